"""The layering is enforced, not hoped for: the import-linter contracts in pyproject.toml
([tool.importlinter]) hold, and no module under pipelines/ grows past 600 lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.lib.lake.paths import PROJECT_ROOT

MAX_LINES = 600


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PROJECT_ROOT).as_posix(): len(path.read_text().splitlines())
        for path in (PROJECT_ROOT / "pipelines").rglob("*.py")
    }


def test_the_import_contracts_hold():
    # The console script beside this interpreter: `python -m importlinter` is not a CLI. No cache,
    # so the run writes nothing into the project.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_no_module_is_over_600_lines():
    too_long = {path: n for path, n in _line_counts().items() if n > MAX_LINES}
    assert not too_long, f"split these by what they do (at most {MAX_LINES} lines): {too_long}"
