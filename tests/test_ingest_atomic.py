"""Idempotent and atomic: a re-run gives the same rows, a crash leaves the previous version."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from pipelines.lib.paths import events_file
from tests.conftest import DAY, event, line


def _snapshot(lake) -> dict[str, list[dict]]:
    files = sorted(p for p in lake.root.rglob("*.parquet") if "landing" not in p.parts)
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


def test_crash_between_write_and_swap_keeps_previous_version(lake, monkeypatch):
    _land_day(lake)
    lake.ingest()
    before = _snapshot(lake)
    lake.land(DAY, "c.jsonl", [line(event("click")) for _ in range(5)])

    real_replace = os.replace
    calls = {"n": 0}

    def crash_on_second_publish(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("simulated crash between write and swap")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_publish)
    with pytest.raises(OSError, match="simulated crash"):
        lake.ingest()
    monkeypatch.setattr(os, "replace", real_replace)

    after = _snapshot(lake)
    # The first table was published (it is whole); every other file is the previous version.
    changed = [name for name in before if after[name] != before[name]]
    assert changed == [events_file("click", DAY)]
    assert len(after[events_file("click", DAY)]) == 6
    leftovers = [p.name for p in lake.root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # a failed publish removes its staging file

    result = lake.ingest()
    assert result.rows["click"] == 6
    assert len(_snapshot(lake)) == 7


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
