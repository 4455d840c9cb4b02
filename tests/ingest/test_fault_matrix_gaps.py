"""Faults of issue 20 that no other test exercised the way the fault matrix of
docs/operations.md states them: real files, real ingest, and for each one the lines lost (0) and
``audit_ledger`` after the fact.

* Two processes materialise the same ingest partition, as two command lines do (in-process
  execution, which meets no run queue): the second waits for the first's lease, then publishes;
  the day is whole and balances.
* A relative lake root used from another working directory: the day lands in the project's lake
  and its ledger balances.
* 16M blank lines in a 16 KiB gzip (the low end of the issue's 16M-64M; test_ingest_memory covers
  64M): counted in bounded memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.lake.lease import lease_path
from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import DAY, event, line
from tests.ingest.test_ingest_memory import (
    _gzip_of_repeats,
    _ingest_measured,
    _landing,
    _ledger_row,
    _within_bounds,
)

ACCOUNTED = ("rows_written", "quarantined", "duplicates", "erased", "blank_lines")


def lines_lost(lake, landed: int) -> int:
    """Lines landed for ``DAY`` that the day's ledger does not account for (rows, quarantine,
    duplicates, erased or blank)."""
    accounted = sum(row.get(c) or 0 for row in lake.ledger(DAY) for c in ACCOUNTED)
    return landed - accounted


def _land_day(lake) -> int:
    lines = [line(event("request")) for _ in range(20)] + [line(event("click")) for _ in range(5)]
    lines.append(b"{not json")
    lake.land(DAY, "a.jsonl", lines)
    return len(lines)


# One "command line": the ingest asset of one partition, executed in process (as `dg launch`
# with the in-process executor, or `materialize()`), its run's log lines printed at the end. With
# a release file, the run holds the partition's lease (inside the step) until that file exists.
_COMMAND_LINE = """
import sys, time
from pathlib import Path
import dagster as dg
from pipelines.defs.ingest import assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource

root, day, release = sys.argv[1], sys.argv[2], sys.argv[3]
if release:
    real = assets.ingest_partition

    def held(*args, **kwargs):
        print("holding the lease", flush=True)
        deadline = time.monotonic() + 120
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return real(*args, **kwargs)

    assets.ingest_partition = held
instance = dg.DagsterInstance.ephemeral()
result = dg.materialize(
    [assets.build_ingest_assets(daily_partitions())],
    partition_key=day,
    resources={
        "lake": LakeResource(root=root, lease_wait_s="120"),
        "pii": PiiResource(),
        "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
    },
    raise_on_error=False,
    instance=instance,
)
for entry in instance.all_logs(result.run_id):
    print("LOG", entry.user_message, flush=True)
sys.exit(0 if result.success else 1)
"""


def _command_line(root: Path, release: str, out: Path) -> subprocess.Popen:
    with open(out, "wb") as sink:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", _COMMAND_LINE, str(root), DAY.isoformat(), release],
            cwd=PROJECT_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_two_command_line_materialisations_of_one_partition_take_turns(lake, tmp_path):
    landed = _land_day(lake)
    release = tmp_path / "release"
    first_out, second_out = tmp_path / "first.log", tmp_path / "second.log"
    first = _command_line(lake.root, str(release), first_out)
    second = None
    try:
        assert _until(lambda: b"holding the lease" in first_out.read_bytes(), 120), (
            first_out.read_text(errors="replace")[-3000:]
        )
        assert (lake.root / lease_path("ingest", DAY.isoformat())).exists()
        second = _command_line(lake.root, "", second_out)
        # The second run reaches the lease while the first still holds it, and waits.
        assert _until(
            lambda: b"is held by" in second_out.read_bytes() or second.poll() is not None, 120
        ), second_out.read_text(errors="replace")[-3000:]
        assert second.poll() is None, second_out.read_text(errors="replace")[-3000:]
        assert not (lake.root / "events").exists()  # nothing published while it waits
        release.touch()
        assert first.wait(timeout=180) == 0, first_out.read_text(errors="replace")[-3000:]
        assert second.wait(timeout=180) == 0, second_out.read_text(errors="replace")[-3000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    logs = second_out.read_text(errors="replace")
    assert "waiting up to" in logs and "TELEMETRY_LEASE_WAIT_S" in logs
    # The second published after the first: the same day, whole, once.
    assert lines_lost(lake, landed) == 0
    assert audit_ledger(lake.lake, DAY).passed
    assert (len(lake.events("request")), len(lake.events("click"))) == (20, 5)
    assert len(lake.quarantine()) == 1
    assert not (lake.root / lease_path("ingest", DAY.isoformat())).exists()


def test_a_relative_lake_root_from_another_working_directory_loses_no_line(
    lake, tmp_path, monkeypatch
):
    landed = _land_day(lake)
    relative = os.path.relpath(lake.root, PROJECT_ROOT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = dg.materialize(
        [build_ingest_assets(daily_partitions())],
        partition_key=DAY.isoformat(),
        resources={
            "lake": LakeResource(root=relative),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
        },
    )
    assert result.success
    assert list(elsewhere.iterdir()) == []  # no new, empty lake beside the working directory
    assert lines_lost(lake, landed) == 0
    assert audit_ledger(lake.lake, DAY).passed
    assert len(lake.events("request")) == 20


def test_sixteen_million_blank_lines_in_a_small_gzip_are_counted_in_bounded_memory(tmp_path):
    root = tmp_path / "lake"
    lines = 16_000_000
    path = _landing(root) / "blanks.jsonl.gz"
    _gzip_of_repeats(path, b"", b"\n" * (1 << 20), lines >> 20, b"\n" * (lines % (1 << 20)))
    assert path.stat().st_size < 32 << 10

    peak, seconds = _ingest_measured(root, tmp_path)

    _within_bounds(peak, seconds)
    row = _ledger_row(root)  # asserts audit_ledger passes
    assert (row["file_lines"], row["lines_taken"], row["blank_lines"]) == (lines, lines, lines)
    assert row["quarantined"] == row["rows_written"] == 0
