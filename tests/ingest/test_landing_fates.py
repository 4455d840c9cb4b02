"""Every landing file has a fate in the ledger: read (as its bytes say, not its name), or not read
with the reason in `file_errors`, and the `landing_files_read` check warns about it. Nothing a
landing folder holds fails the day or vanishes from the ledger."""

from __future__ import annotations

import ctypes
import gzip
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import (
    LANDING_FILES_READ,
    LEDGER_BALANCES,
    build_files_read_check,
    build_ledger_check,
)
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.automation.landing_watch import list_landing, run_key
from pipelines.lib.ingest.landing import (
    LINK_DANGLING,
    LINK_OUTSIDE,
    NAMED_GZ_NOT_GZIP,
    NOT_A_FILE,
    ReadStats,
    _blocks,
    iter_line_batches,
    list_landing_files,
    reading_partitions,
)
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.privacy.landing_erasure import scrub_landing
from tests.conftest import DAY, event, line

REPO = Path(__file__).resolve().parents[2]
FOLDER = f"landing/dt={DAY}"


def _ledger(lake, day=DAY) -> dict[str, dict]:
    return {r["landing_file"]: r for r in lake.ledger(day)}


def _materialize_with_checks(lake) -> dict[str, dg.AssetCheckEvaluation]:
    partitions = daily_partitions()
    result = dg.materialize(
        [
            build_ingest_assets(partitions),
            build_ledger_check(partitions),
            build_files_read_check(partitions),
        ],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(),
        },
        partition_key=DAY.isoformat(),
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_symlinks_inside_landing_are_read_and_others_get_a_ledger_row_and_a_warning(lake, tmp_path):
    real = lake.land(DAY, "real.jsonl", [line(event("click")) for _ in range(3)])
    folder = lake.root / FOLDER
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(line(event("click")) + b"\n")
    (folder / "inside.jsonl").symlink_to("real.jsonl")
    (folder / "outside.jsonl").symlink_to(elsewhere)
    (folder / "dangling.jsonl").symlink_to("gone.jsonl")
    (folder / "folder.jsonl").mkdir()
    (folder / "notes.txt").write_text("not a landing file: ignored")

    checks = _materialize_with_checks(lake)

    ledger = _ledger(lake)
    others = [f"{FOLDER}/{n}.jsonl" for n in ("inside", "outside", "dangling", "folder")]
    assert sorted(ledger) == sorted([real, *others])  # notes.txt is not a landing file
    # The link inside landing/ is read: the same 3 lines twice, so (by name order) the link's
    # copies are the rows and real.jsonl's are counted duplicates.
    inside = ledger[f"{FOLDER}/inside.jsonl"]
    assert (inside["file_lines"], inside["rows_written"], inside["file_errors"]) == (3, 3, None)
    assert (ledger[real]["file_lines"], ledger[real]["duplicates"]) == (3, 3)
    for name, reason in [
        ("outside", LINK_OUTSIDE),
        ("dangling", LINK_DANGLING),
        ("folder", NOT_A_FILE),
    ]:
        row = ledger[f"{FOLDER}/{name}.jsonl"]
        assert (row["file_errors"], row["file_lines"], row["lines_taken"]) == (reason, 0, 0)
    assert checks[LEDGER_BALANCES].passed
    warning = checks[LANDING_FILES_READ]
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert warning.metadata["files_with_errors"].value == 3
    assert warning.metadata["files_not_read_whole"].value == 3
    listed = {
        f["landing_file"]: f["file_errors"] for f in warning.metadata["sample_file_errors"].value
    }
    assert listed == {
        f"{FOLDER}/outside.jsonl": LINK_OUTSIDE,
        f"{FOLDER}/dangling.jsonl": LINK_DANGLING,
        f"{FOLDER}/folder.jsonl": NOT_A_FILE,
    }
    # The landing sensor lists exactly the files the ledger does, so every reader re-runs for each.
    assert sorted(list_landing(lake.lake)[DAY]) == sorted(ledger)


def test_a_plain_file_named_gz_is_read_and_the_check_warns(lake):
    name = lake.land(DAY, "plain.jsonl.gz", [line(event("click")) for _ in range(50)])
    checks = _materialize_with_checks(lake)
    row = _ledger(lake)[name]
    assert (row["file_lines"], row["rows_written"]) == (50, 50)
    assert row["file_errors"] == NAMED_GZ_NOT_GZIP
    assert checks[LEDGER_BALANCES].passed
    assert not checks[LANDING_FILES_READ].passed
    assert checks[LANDING_FILES_READ].metadata["files_not_read_whole"].value == 0


def test_a_name_that_is_not_utf8_is_recorded_escaped_by_every_reader(lake):
    folder = lake.root / FOLDER
    folder.mkdir(parents=True)
    raw_name = os.fsencode(folder) + b"/caf\xe9-\xff.jsonl"  # Latin-1 bytes: not UTF-8
    with open(raw_name, "wb") as out:
        out.write(line(event("click", user_id="u-gone")) + b"\n" + line(event("click")) + b"\n")
    escaped = f"{FOLDER}/caf\\xe9-\\xff.jsonl"

    for day in reading_partitions(DAY):
        lake.ingest(day)
        assert audit_ledger(lake.lake, day).passed
    assert lake.ledger(DAY)[0]["landing_file"] == escaped
    assert {r["landing_file"] for r in lake.events("click")} == {escaped}
    assert audit_ledger(lake.lake, reading_partitions(DAY)[-1]).files_complete == 1
    listing = list_landing(lake.lake)
    assert list(listing[DAY]) == [escaped] and run_key(DAY, listing[DAY])
    # Erasure from landing rewrites the file under its real name.
    [rewrite] = scrub_landing(lake.lake, ["u-gone"], [DAY])
    assert (rewrite.path, rewrite.lines_removed) == (escaped, 1)
    # (beside it, dot-named so no listing reads it, the record of the rewrite: escaped name)
    assert sorted(os.listdir(os.fsencode(folder))) == [
        b".caf\\xe9-\\xff.jsonl.rewritten.json",
        b"caf\xe9-\xff.jsonl",
    ]


def test_a_truncated_gzip_is_named_by_the_check(lake):
    docs = b"".join(line(event("click", seconds=60 + i)) + b"\n" for i in range(500))
    full = gzip.compress(docs, mtime=0)
    folder = lake.root / FOLDER
    folder.mkdir(parents=True)
    (folder / "cut.jsonl.gz").write_bytes(full[: len(full) // 2])
    checks = _materialize_with_checks(lake)
    assert checks[LEDGER_BALANCES].passed
    [listed] = checks[LANDING_FILES_READ].metadata["sample_file_errors"].value
    assert listed["landing_file"] == f"{FOLDER}/cut.jsonl.gz" and listed["read_whole"] is False
    assert "truncated" in listed["file_errors"]


def test_a_file_gone_between_listing_and_reading_is_recorded_not_raised(lake):
    lake.land(DAY, "a.jsonl", [line(event("click"))])
    [landing] = list_landing_files(lake.lake, [DAY])
    (lake.root / landing.path).unlink()
    stats = ReadStats()
    batches = iter_line_batches(lake.lake, landing, stats, batch_bytes=1 << 20, max_line_bytes=64)
    assert list(batches) == []
    assert stats.truncated and stats.errors == ["could not be opened: No such file or directory"]


CHILD = """
import sys
from datetime import date
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.partition import ingest_partition
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.lake.storage import Lake

ingest_partition(Lake(sys.argv[1]), date.fromisoformat(sys.argv[2]), PiiKey(pii.DEV_KEY))
"""


def _without_root_file_access() -> None:
    """In the child: drop the capabilities that let root read any file, so permissions apply."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_file_gets_a_ledger_row_and_the_rest_is_ingested(lake):
    readable = lake.land(DAY, "a.jsonl", [line(event("click"))])
    locked = lake.land(DAY, "locked.jsonl", [line(event("click"))])
    (lake.root / locked).chmod(0)
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(lake.root), DAY.isoformat()],
            cwd=REPO,
            capture_output=True,
            preexec_fn=_without_root_file_access if os.geteuid() == 0 else None,
        )
    finally:
        (lake.root / locked).chmod(0o644)
    if child.returncode and b"prctl" in child.stderr:
        pytest.skip("cannot drop root's file access here")
    assert child.returncode == 0, child.stderr.decode(errors="replace")[-3000:]
    ledger = _ledger(lake)
    assert ledger[readable]["rows_written"] == 1
    row = ledger[locked]
    assert (row["file_lines"], row["lines_taken"], row["file_truncated"]) == (0, 0, True)
    assert row["file_errors"] == "could not be opened: Permission denied"
    audit = audit_ledger(lake.lake, DAY)
    assert audit.passed
    assert audit.file_errors == [
        {
            "landing_file": locked,
            "file_errors": "could not be opened: Permission denied",
            "file_lines": 0,
            "read_whole": False,
        }
    ]


def test_gzip_inflates_in_bounded_blocks_across_concatenated_members(lake):
    """Two members, one inflating 1000:1: every block is at most 1 MiB, and every line is read."""
    first = b"".join(b"%d\n" % n for n in range(100_000))
    second = b"z" * (40 << 20) + b"\n" + b"last\n"
    path = lake.land(DAY, "two.jsonl.gz", gzip.compress(first) + gzip.compress(second))
    [landing] = list_landing_files(lake.lake, [DAY])
    stats = ReadStats()
    sizes = [len(block) for block in _blocks(lake.lake, landing, stats)]
    assert landing.path == path and stats.errors == [] and not stats.truncated
    assert max(sizes) <= 1 << 20 and sum(sizes) == len(first) + len(second)
    batches = list(
        iter_line_batches(lake.lake, landing, ReadStats(), batch_bytes=1 << 20, max_line_bytes=1000)
    )
    line_bytes = [n for b in batches for n in b["line_bytes"].to_pylist()]
    assert line_bytes == [len(b"%d" % n) for n in range(100_000)] + [40 << 20, 4]
