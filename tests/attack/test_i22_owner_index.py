"""Attacks on the per-landing-file owner index (lib/ingest/owner_index.py, issue 22).

Four defects were found this way and fixed (an in-place rewrite with mtime put back, a file
rewritten between the index lookup and the read, an index of the wrong shape, per-batch work
growing with the file); the other tests record attacks that held."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.lib.ingest import owner_index
from pipelines.lib.ingest.landing import reading_partitions
from pipelines.lib.ingest.ledger import audit_ledger
from tests.conftest import DAY, LakeHelper, event, line

PREV = DAY - timedelta(days=1)


def _index_files(root: Path) -> list[Path]:
    return sorted((root / owner_index.INDEX_ROOT).rglob("*.parquet"))


def _clicks(lake: LakeHelper, day) -> set[str]:
    path = lake.root / f"events/event_type=click/event_date={day}/part-00000.parquet"
    return {r["event_id"] for r in pq.read_table(path).to_pylist()} if path.exists() else set()


def _ingest_all(lake: LakeHelper, landing_dt=DAY) -> None:
    for day in reading_partitions(landing_dt):
        lake.ingest(day)


def _same_length_events() -> tuple[dict, dict]:
    """Two clicks whose JSON lines have the same length: one of D-1, one of D."""
    a = event("click", PREV, seconds=3600)
    b = dict(a, timestamp_ms=a["timestamp_ms"] + 86_400_000)  # same digits count, next day
    assert len(line(a)) == len(line(b))
    return a, b


def test_i22_in_place_same_size_edit_with_mtime_restored_keeps_the_line(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    moved_from, moved_to = _same_length_events()
    keep = event("click", DAY)
    lake.land(DAY, "a.jsonl", [line(keep), line(moved_from)])
    _ingest_all(lake)
    assert _clicks(lake, PREV) == {moved_from["event_id"]}
    path = lake.root / "landing" / f"dt={DAY}" / "a.jsonl"
    before = os.stat(path)
    data = path.read_bytes().replace(line(moved_from), line(moved_to))
    assert len(data) == before.st_size
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    # The documented remedy for a changed landing file: re-run every partition that reads it.
    _ingest_all(lake)
    assert _clicks(lake, PREV) == set()
    assert _clicks(lake, DAY) == {keep["event_id"], moved_to["event_id"]}


def test_i22_after_an_in_place_edit_the_ledger_audit_balances(tmp_path):
    """Fixed: the in-place edit (mtime put back) no longer loses a line (ctime is part of the
    file's identity), so the cross-partition ledger audit balances."""
    lake = LakeHelper(tmp_path / "lake")
    moved_from, moved_to = _same_length_events()
    lake.land(DAY, "a.jsonl", [line(event("click", DAY)), line(moved_from)])
    _ingest_all(lake)
    path = lake.root / "landing" / f"dt={DAY}" / "a.jsonl"
    before = os.stat(path)
    data = path.read_bytes().replace(line(moved_from), line(moved_to))
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _ingest_all(lake)
    audit = audit_ledger(lake.lake, DAY)
    assert audit.passed, audit
    assert not audit.file_total_mismatches


def test_i22_file_rewritten_between_index_lookup_and_read_is_read_again(tmp_path, monkeypatch):
    lake = LakeHelper(tmp_path / "lake")
    prev_event = event("click", PREV, seconds=7200)
    mine = event("click", DAY, seconds=7200)
    assert len(line(prev_event)) == len(line(mine))
    lake.land(DAY, "a.jsonl", [line(prev_event), line(mine)])
    lake.ingest(PREV)  # indexes a.jsonl: line 1 -> D-1, line 2 -> D
    path = lake.root / "landing" / f"dt={DAY}" / "a.jsonl"
    real = owner_index.others_lines

    def then_rewrite(*args, **kwargs):
        found = real(*args, **kwargs)
        if args[1].path.endswith("a.jsonl"):
            # The producer swaps the lines' order (same size) after the lookup.
            path.write_bytes(line(mine) + b"\n" + line(prev_event) + b"\n")
        return found

    monkeypatch.setattr(owner_index, "others_lines", then_rewrite)
    result = lake.ingest(DAY)
    # Line 1 is now D's own event: without the index it would be staged.
    assert result.rows["click"] == 1, result.rows


def test_i22_index_of_another_version_written_by_a_concurrent_run_is_not_applied(tmp_path):
    """Held: an index keyed for another version of the file (what a concurrent run reading the
    file before a rewrite would leave) is ignored."""
    lake = LakeHelper(tmp_path / "lake")
    lake.land(DAY, "a.jsonl", [line(event("click", PREV)), line(event("click", DAY))])
    lake.ingest(PREV)
    [index] = _index_files(lake.root)
    stale = pq.read_table(index)
    path = lake.root / "landing" / f"dt={DAY}" / "a.jsonl"
    mine = event("click", DAY, seconds=99)
    path.write_bytes(line(mine) + b"\n" + line(event("click", PREV, seconds=99)) + b"\n")
    pq.write_table(stale, index)  # the concurrent run's late write, key of the old version
    lake.ingest(DAY)
    assert mine["event_id"] in _clicks(lake, DAY)


@pytest.mark.parametrize(
    "corrupt",
    [
        "truncated",
        "empty",
        "not_parquet",
        "directory",
        "wrong_type_same_key",
        "missing_column",
    ],
)
def test_i22_a_broken_index_is_ignored(tmp_path, corrupt):
    lake = LakeHelper(tmp_path / "lake")
    mine = event("click", DAY)
    lake.land(DAY, "a.jsonl", [line(event("click", PREV)), line(mine)])
    lake.ingest(PREV)
    [index] = _index_files(lake.root)
    table = pq.read_table(index)
    if corrupt == "truncated":
        index.write_bytes(index.read_bytes()[:-20])
    elif corrupt == "empty":
        index.write_bytes(b"")
    elif corrupt == "not_parquet":
        index.write_bytes(b"PAR1 not really")
    elif corrupt == "directory":
        index.unlink()
        index.mkdir()
        (index / "x").write_text("x")
    elif corrupt == "wrong_type_same_key":
        bad = pa.table(
            {"line_no": table["line_no"], "owning_date": ["x"] * table.num_rows}
        ).replace_schema_metadata(table.schema.metadata)
        pq.write_table(bad, index)
    elif corrupt == "missing_column":
        bad = pa.table({"line_no": table["line_no"]}).replace_schema_metadata(table.schema.metadata)
        pq.write_table(bad, index)
    lake.ingest(DAY)
    assert _clicks(lake, DAY) == {mine["event_id"]}


def test_i22_gzip_blank_crlf_and_oversize_lines_route_the_same_through_the_index(tmp_path):
    """Held: a gzip file of blank, CRLF and oversize lines; then the line limit changed."""
    lake = LakeHelper(tmp_path / "lake")
    mine, prev = event("click", DAY), event("click", PREV)
    big = dict(event("click", DAY), error_message="x" * 5000)
    data = b"\r\n".join([line(prev), b"", b"  \t", line(big), line(mine), b"{broken"]) + b"\r\n"
    lake.land(DAY, "a.jsonl.gz", gzip.compress(data))
    lake.ingest(PREV, max_line_bytes=2000)
    assert _index_files(lake.root)
    lake.ingest(DAY, max_line_bytes=100_000)  # limit raised: the big line is now D's event
    quarantine = lake.root / f"quarantine/event_date={DAY}/part-00000.parquet"
    q = pq.read_table(quarantine).to_pylist() if quarantine.exists() else []
    ids = _clicks(lake, DAY)
    assert mine["event_id"] in ids
    assert big["event_id"] in ids or any(r["line_no"] == 4 for r in q)


def test_i22_renamed_landing_file_is_read_whole_again(tmp_path):
    """Held: a renamed file keeps its identity but the index is per path."""
    lake = LakeHelper(tmp_path / "lake")
    mine = event("click", DAY)
    lake.land(DAY, "a.jsonl", [line(event("click", PREV)), line(mine)])
    lake.ingest(PREV)
    folder = lake.root / "landing" / f"dt={DAY}"
    (folder / "a.jsonl").rename(folder / "b.jsonl")
    lake.ingest(DAY)
    assert _clicks(lake, DAY) == {mine["event_id"]}


def test_i22_the_index_holds_no_line_content(tmp_path):
    """Held: only line numbers, dates and the identity key (no user id, no text)."""
    lake = LakeHelper(tmp_path / "lake")
    doc = event("click", DAY, user_id="alice@example.com")
    lake.land(DAY, "a.jsonl", [line(doc)])
    lake.ingest(DAY)
    [index] = _index_files(lake.root)
    raw = index.read_bytes()
    assert b"alice" not in raw
    assert doc["event_id"].encode() not in raw
    assert pq.read_table(index).column_names == ["line_no", "owning_date"]


def test_i22_skipping_through_the_index_is_linear_in_the_file(tmp_path, monkeypatch):
    lake = LakeHelper(tmp_path / "lake")
    base = event("click", PREV)
    # About 10 MB: batches are cut from 1 MiB read blocks, so about ten batches.
    lines = [
        line(dict(base, event_id=f"e-{n}", timestamp_ms=base["timestamp_ms"] + n))
        for n in range(30000)
    ]
    lines.append(line(event("click", DAY)))
    lake.land(DAY, "a.jsonl", lines)
    small = {"batch_bytes": 4096, "max_line_bytes": 2048}
    lake.ingest(PREV, **small)
    work = {"elements": 0, "calls": 0}
    real = owner_index.keep_mask

    def counting(mask, line_no):
        work["elements"] += len(line_no)  # a lookup per line of the batch, nothing per file
        work["calls"] += 1
        return real(mask, line_no)

    monkeypatch.setattr(owner_index, "keep_mask", counting)
    assert lake.ingest(DAY, **small).rows["click"] == 1
    assert work["calls"] > 5, work  # many batches
    assert work["elements"] <= len(lines), work
