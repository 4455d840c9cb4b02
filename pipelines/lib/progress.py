"""A tiny progress reporter for long command-line jobs (no third-party dependencies).

On a terminal it redraws one line at most ~10 times a second::

    sample [############..................]  40% 400k/1.0M events 181k/s ETA 3s

Elsewhere (CI logs, pipes) it writes a plain line at most every 5 seconds, plus one at the end.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_BAR_WIDTH = 30


def human_count(n: float) -> str:
    """999, 1.2k, 45k, 1.0M, 2.5G."""
    n = float(n)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            value = n / limit
            return f"{value:.1f}{suffix}" if abs(value) < 10 else f"{value:.0f}{suffix}"
    return f"{n:.0f}"


def human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``with Progress(total, "label") as p: p.advance(n)``; ``total=None`` when unknown."""

    def __init__(
        self,
        total: int | None,
        label: str,
        unit: str = "events",
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        log_every: float = 5.0,
        redraw_every: float = 0.1,
    ) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval = redraw_every if tty else log_every
        self.done = 0
        self._start = time.monotonic()
        self._last = self._start
        self._width = 0

    def __enter__(self) -> Progress:
        self._start = self._last = time.monotonic()
        if self.tty:
            self._draw(self._start)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def close(self, *, failed: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self._draw(now)
            self.stream.write("\n")
        else:
            elapsed = now - self._start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            status = "failed after" if failed else "done:"
            self.stream.write(
                f"{self.label}: {status} {human_count(self.done)} {self.unit} "
                f"in {elapsed:.1f}s ({human_count(rate)}/s)\n"
            )
        self.stream.flush()

    def render(self, now: float | None = None) -> str:
        """The status text (without bar on non-terminals)."""
        now = time.monotonic() if now is None else now
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        counts = human_count(self.done)
        parts = []
        if self.total:
            frac = min(1.0, self.done / self.total)
            counts += f"/{human_count(self.total)}"
            if self.tty:
                filled = int(frac * _BAR_WIDTH)
                parts.append(f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]")
            parts.append(f"{frac * 100:3.0f}%")
        parts.append(f"{counts} {self.unit}")
        parts.append(f"{human_count(rate)}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {human_duration(max(0, self.total - self.done) / rate)}")
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.render(now)
        if self.tty:
            line = f"{self.label} {text}"
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write(f"\r{line}{' ' * pad}")
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
