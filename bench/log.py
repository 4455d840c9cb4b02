"""Progress lines on stderr, so stdout keeps only the results."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
