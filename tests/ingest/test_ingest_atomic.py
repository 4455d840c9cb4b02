"""Idempotent and atomic: a re-run gives the same rows, a crash leaves the previous version, and a
partition folder is replaced whole (all old files or all new ones)."""

from __future__ import annotations

import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.lib.lake import storage
from pipelines.lib.lake.paths import events_dir, events_file
from pipelines.lib.lake.publish import PUBLISH_DIR, pending_days
from pipelines.lib.lake.storage import Lake
from tests.conftest import DAY, event, line


def _snapshot(lake) -> dict[str, list[dict]]:
    files = sorted(
        p for p in lake.root.rglob("*.parquet") if not {"landing", PUBLISH_DIR} & set(p.parts)
    )
    return {str(p.relative_to(lake.root)): pq.read_table(p).to_pylist() for p in files}


def _land_day(lake):
    original = event("click")
    lake.land(DAY, "a.jsonl", [line(event("request")), line(original), line(original), b"{bad"])
    lake.land(DAY + timedelta(days=1), "b.jsonl.gz", [line(event("impression"))], gz=True)


def test_rerun_gives_identical_rows_and_files(lake):
    _land_day(lake)
    lake.ingest()
    first = _snapshot(lake)
    lake.ingest()
    assert _snapshot(lake) == first
    assert len(first) == 7  # five event tables, quarantine, ledger


def test_a_crash_between_two_swaps_is_rolled_forward_by_the_next_run(lake, monkeypatch):
    """The day's tables publish as one unit (lib/lake/publish.py; every step is faulted in
    tests/lake/test_day_publish.py): a crash after the first swap leaves a journal, and the next run
    completes the publish before it reads anything."""
    _land_day(lake)
    lake.ingest()
    before = _snapshot(lake)
    lake.land(DAY, "c.jsonl", [line(event("click")) for _ in range(5)])

    real_swap = storage._swap_in
    calls = {"n": 0}

    def crash_on_second_publish(staging, final):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("simulated crash between write and swap")
        return real_swap(staging, final)

    monkeypatch.setattr(storage, "_swap_in", crash_on_second_publish)
    with pytest.raises(OSError, match="simulated crash"):
        lake.ingest()
    monkeypatch.setattr(storage, "_swap_in", real_swap)

    after = _snapshot(lake)
    # The first table was swapped in (it is whole); the journal names the rest.
    changed = [name for name in before if after[name] != before[name]]
    assert changed == [events_file("click", DAY)]
    assert len(after[events_file("click", DAY)]) == 6
    assert set(after) == set(before)
    assert pending_days(lake.lake) == [DAY]

    result = lake.ingest()
    assert result.rows["click"] == 6
    assert len(_snapshot(lake)) == 7
    assert pending_days(lake.lake) == []


def test_publishing_a_file_replaces_every_part_of_its_partition(lake):
    """A re-ingest after a compaction (several part files) leaves only its own file."""
    _land_day(lake)
    lake.ingest()
    folder = lake.root / events_dir("click", DAY)
    rows = pq.read_table(folder / "part-00000.parquet")
    for n in (1, 2):  # what a compaction into three files leaves beside part-00000
        pq.write_table(rows, folder / f"part-0000{n}-c0ffee.parquet")
    lake.ingest()
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet"]
    assert pq.read_table(folder).num_rows == rows.num_rows == 1  # not three copies


def test_folder_swap_shows_all_old_or_all_new_files(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    rel = "events/event_type=click/event_date=2025-06-02"
    with lake.staged_dir(rel) as staging:
        for n in range(3):
            Path(staging, f"part-0000{n}.parquet").write_text(f"old {n}")
    final = tmp_path / "lake" / rel
    seen = []
    real_swap = storage._swap_in

    def observe(staging, target):
        seen.append(sorted(p.name for p in final.iterdir()))  # just before the swap: all old
        real_swap(staging, target)
        seen.append(sorted(p.name for p in final.iterdir()))  # just after: all new

    monkeypatch.setattr(storage, "_swap_in", observe)
    with lake.staged_dir(rel) as staging:
        Path(staging, "part-00000.parquet").write_text("new")
    assert seen == [[f"part-0000{n}.parquet" for n in range(3)], ["part-00000.parquet"]]
    assert (final / "part-00000.parquet").read_text() == "new"
    assert list((tmp_path / "lake" / storage.STAGING_DIR).iterdir()) == []


def test_a_crash_inside_the_block_publishes_nothing(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    rel = "quality/event_date=2025-06-02"
    with lake.staged_dir(rel) as staging:
        Path(staging, "part-00000.parquet").write_text("v1")
    with pytest.raises(RuntimeError, match="mid-write"), lake.staged_dir(rel) as staging:
        Path(staging, "part-00000.parquet").write_text("v2, half")
        raise RuntimeError("mid-write")
    assert (tmp_path / "lake" / rel / "part-00000.parquet").read_text() == "v1"
    assert list((tmp_path / "lake" / storage.STAGING_DIR).iterdir()) == []


def test_stale_staging_of_a_crashed_run_is_removed_by_the_next_publish(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    rel = "ledger/event_date=2025-06-02"
    area = tmp_path / "lake" / storage.STAGING_DIR
    crashed = area / f"{urllib.parse.quote(rel, safe='')}.deadbeef0000"
    crashed.mkdir(parents=True)
    (crashed / "part-00000.parquet").write_text("never published")
    other = area / f"{urllib.parse.quote('ledger/event_date=2025-06-03', safe='')}.0123456789ab"
    other.mkdir()
    with lake.staged_dir(rel) as staging:
        Path(staging, "part-00000.parquet").write_text("v1")
    assert list(area.iterdir()) == [other]  # another partition's staging is not this run's business


def test_without_renameat2_two_renames_publish_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_renameat2", lambda source, target, flags: False)
    lake = Lake(str(tmp_path / "lake"))
    rel = "contracts/event_date=2025-06-02"
    for version in ("v1", "v2"):
        with lake.staged_dir(rel) as staging:
            Path(staging, f"part-{version}.parquet").write_text(version)
    assert os.listdir(tmp_path / "lake" / rel) == ["part-v2.parquet"]
    assert list((tmp_path / "lake" / storage.STAGING_DIR).iterdir()) == []


def test_a_rewrite_of_a_folder_that_changed_meanwhile_is_refused(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    rel = "events/event_type=click/event_date=2025-06-02"
    with lake.staged_dir(rel) as staging:
        Path(staging, "part-00000.parquet").write_text("ingest v1")
    listing = lake.parquet_files(rel)
    with lake.staged_dir(rel) as staging:  # a re-ingest lands while a compaction works
        Path(staging, "part-00000.parquet").write_text("ingest v2, longer")
    with (
        pytest.raises(storage.ConcurrentChangeError, match="changed while"),
        lake.staged_dir(rel, if_unchanged=listing) as staging,
    ):
        Path(staging, "part-00000-c0ffee.parquet").write_text("compacted v1")
    assert os.listdir(tmp_path / "lake" / rel) == ["part-00000.parquet"]
    assert (tmp_path / "lake" / rel / "part-00000.parquet").read_text() == "ingest v2, longer"


def test_partitions_write_only_their_own_files(lake):
    _land_day(lake)
    lake.ingest(DAY)
    other = DAY + timedelta(days=1)
    mine = {p: p.stat().st_mtime_ns for p in lake.root.rglob(f"event_date={DAY}/*.parquet")}
    lake.ingest(other)
    assert {p: p.stat().st_mtime_ns for p in mine} == mine
    assert len(list(lake.root.rglob(f"event_date={other}/*.parquet"))) == 7


def test_two_partitions_at_once_match_one_after_the_other(lake):
    # D and D+1 read the same landing files (dt D .. D+2): they must not disturb each other.
    other = DAY + timedelta(days=1)
    lake.land(DAY, "a.jsonl", [line(event("click", day=DAY)) for _ in range(50)])
    lake.land(other, "b.jsonl", [line(event("click", day=other)) for _ in range(50)])
    lake.ingest(DAY)
    lake.ingest(other)
    sequential = _snapshot(lake)
    for path in lake.root.rglob("*.parquet"):
        if "landing" not in path.parts:
            path.unlink()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lake.ingest, [DAY, other]))
    assert [r.rows["click"] for r in results] == [50, 50]
    assert _snapshot(lake) == sequential
