"""Headless Chromium for the tests that look at a page the way a browser renders it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.ci import missing_tool


def headless_chromium(profile: Path) -> list[str]:
    """The command line of a headless Chromium with a throw-away profile, to which a test adds
    what it wants (``--dump-dom URL``...). Without Chromium the test is skipped, except in CI,
    where ``.ci/run`` installs it and its absence is a failure."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        missing_tool("Chromium not installed (apt-get install chromium; .ci/run installs it)")
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
