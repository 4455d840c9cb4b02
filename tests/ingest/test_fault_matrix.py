"""The fault matrix of docs/operations.md is checked against the tests: every row names tests that
exist (collected by pytest in a child process), no row loses a line, every fault of issue 20 has a
row, and each memory row states the bound tests/ingest/test_ingest_memory.py asserts, with a
measured peak within it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.ingest.test_ingest_memory import HEADROOM_MB, MEMORY_LIMIT_MB

DOC = PROJECT_ROOT / "docs" / "operations.md"
COLUMNS = [
    "fault",
    "outcome",
    "lines lost",
    "ledger balances after recovery",
    "peak RSS",
    "proved by",
]

# Issue 20's faults, as its description and "What to build" name them, each with the words its
# row's fault cell must contain.
ISSUE_FAULTS = {
    "A plain NDJSON file named `*.jsonl.gz` had its 50 valid lines dropped": [
        "plain NDJSON named `*.jsonl.gz`"
    ],
    "A symlink inside `landing/` pointing at a valid file was skipped with no ledger row": [
        "symlink inside `landing/` to a valid file"
    ],
    "Symlinks: followed only when they resolve inside `landing/`; otherwise a ledger row": [
        "symlink pointing outside `landing/`"
    ],
    "Re-running a materialised day after its landing folders had gone": [
        "re-running a materialised day whose landing folders are gone"
    ],
    "A relative `TELEMETRY_LAKE_ROOT` used from another working directory": [
        "relative `TELEMETRY_LAKE_ROOT`",
        "another working directory",
    ],
    "A lake root that does not exist is refused": ["lake root that does not exist"],
    "A missing S3 bucket gets a clear message": ["S3 bucket that does not exist"],
    "Disk full part-way through gave `OSError: [Errno 28] No space left on device`": [
        "disk full",
        "ENOSPC",
    ],
    "A `kill -9` right after the `click` swap gave the same mix": [
        "`kill -9` right after the `click` swap"
    ],
    "Test with a fault injected at every step of the publish": [
        "a fault at every step of the publish"
    ],
    "A landing file whose name has a non-UTF-8 byte fails the whole day": [
        "name with a non-UTF-8 byte"
    ],
    "a 2.2 MB gzip inflating to 2.3 GB with no newline": [
        "2.2 MB gzip inflating to 2.3 GB with no newline"
    ],
    "a 16–64 KiB gzip of 16M–64M blank lines (16M)": ["gzip of 16M blank lines"],
    "a 16–64 KiB gzip of 16M–64M blank lines (64M)": ["gzip of 64M blank lines"],
    "a 4 MB plain file of blank lines": ["4 MB plain file of 4M blank lines"],
    "Unreadable and truncated files are listed in the ledger check's metadata (unreadable)": [
        "unreadable landing file"
    ],
    "Unreadable and truncated files are listed in the ledger check's metadata (truncated)": [
        "truncated gzip"
    ],
    "A killed run stays `STARTED` and keeps its slot in the `ingest` pool": ["a killed run"],
    "An S3 endpoint that accepts connections but never answers": [
        "S3 endpoint that accepts connections and never answers"
    ],
    "Two command-line materialisations of the same partition ran at once": [
        "two command-line materialisations of one partition"
    ],
}

# Rows proved by a test that measures the ingest's peak RSS in a child process.
MEMORY_TESTS = (
    "tests/ingest/test_ingest_memory.py::",
    "tests/ingest/test_fault_matrix_gaps.py::test_sixteen_million_blank_lines",
)


def _cells(row: str) -> list[str]:
    # Split on the table's pipes, not on a pipe inside backticks (none today, but be safe).
    cells, current, in_code = [], "", False
    for char in row.strip()[1:-1]:
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append(current.strip())
    return cells


def matrix() -> list[dict[str, str]]:
    """The rows of the "Fault matrix" section's table, by column."""
    text = DOC.read_text(encoding="utf-8")
    assert text.count("\n## Fault matrix\n") == 1, "one Fault matrix section"
    section = text.split("\n## Fault matrix\n", 1)[1].split("\n## ", 1)[0]
    table = [ln for ln in section.splitlines() if ln.startswith("|")]
    header, rule, *rows = table
    assert _cells(header) == COLUMNS
    assert set(rule) <= set("|-: ")
    parsed = [dict(zip(COLUMNS, _cells(r), strict=True)) for r in rows]
    assert parsed, "the fault matrix has no rows"
    return parsed


def node_ids(row: dict[str, str]) -> list[str]:
    ids = re.findall(r"`([^`]+::[^`]+)`", row["proved by"])
    assert ids, f"no test named for {row['fault']!r}"
    return ids


@pytest.fixture(scope="module")
def collected() -> set[str]:
    files = sorted({i.split("::", 1)[0] for row in matrix() for i in node_ids(row)})
    for file in files:
        assert (PROJECT_ROOT / file).is_file(), f"{file} does not exist"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {ln.strip() for ln in done.stdout.splitlines() if "::" in ln}


def test_every_row_names_tests_that_exist(collected):
    for row in matrix():
        for node in node_ids(row):
            # A parametrised test may be named whole (all its cases) or by one case's id.
            assert node in collected or any(c.startswith(node + "[") for c in collected), (
                f"{row['fault']!r}: {node} is not a collected test"
            )


def test_no_row_loses_a_line():
    for row in matrix():
        assert re.match(r"0\b", row["lines lost"]), f"{row['fault']!r}: {row['lines lost']}"


def test_every_row_says_whether_the_ledger_balances():
    for row in matrix():
        balances = row["ledger balances after recovery"]
        assert balances.startswith(("yes", "n/a: nothing written", "n/a: the test's run")), (
            f"{row['fault']!r}: {balances}"
        )


def test_every_fault_of_the_issue_has_a_row():
    faults = [row["fault"] for row in matrix()]
    for fault, words in ISSUE_FAULTS.items():
        assert any(all(w in f for w in words) for f in faults), f"no row for: {fault}"


def test_memory_rows_state_the_bound_the_memory_tests_assert():
    bound = MEMORY_LIMIT_MB + HEADROOM_MB
    memory_rows = 0
    for row in matrix():
        rss = row["peak RSS"]
        if any(n.startswith(MEMORY_TESTS) for n in node_ids(row)):
            memory_rows += 1
            found = re.match(r"(\d+) MB, [\d.]+ s \(bound (\d+) MB", rss)
            assert found, f"{row['fault']!r}: peak RSS {rss!r} is not 'N MB, T s (bound B MB'"
            measured, stated = int(found[1]), int(found[2])
            assert stated == bound, f"{row['fault']!r}: the doc says {stated} MB, tests {bound}"
            assert measured <= bound, f"{row['fault']!r}: {measured} MB is over the bound"
        else:
            assert rss == "—", f"{row['fault']!r}: a peak RSS no test measures: {rss!r}"
    assert memory_rows >= 4  # the issue's table: the bomb, 16M and 64M blank lines, 4 MB plain
