"""House style is enforced, not hoped for: ruff (lint + format) on Python, sqlfluff on SQL."""

from __future__ import annotations

import subprocess
import sys

from pipelines.lib.lake.paths import PROJECT_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True
    )


def test_ruff_lint():
    result = _run("ruff", "check", "pipelines", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _run("ruff", "format", "--check", "pipelines", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sqlfluff():
    result = _run("sqlfluff", "lint", "sql")
    assert result.returncode == 0, result.stdout + result.stderr
