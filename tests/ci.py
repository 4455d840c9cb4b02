"""Whether the suite runs in CI, by one rule, and what a test does without a tool CI installs."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# CI services set CI to "true" (GitHub, GitLab) or "1"; .ci/run sets "true". Unset, empty or a
# spelled-out no means a developer's machine.
_NOT_CI = {"", "0", "false", "no"}


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in _NOT_CI


def missing_tool(message: str) -> NoReturn:
    """Skip a test whose tool is not installed, except in CI: `.ci/run` installs it there, so its
    absence fails the test rather than hiding what it checks."""
    if on_ci():
        pytest.fail(message)
    pytest.skip(message)
