"""The per-file owner index (lib/ingest/owner_index.py): each landing file's lines are parsed to
find their partition once, the other partitions that read the file skip what is not theirs, and
none of that changes a published row, quarantined line or ledger count.

The oracle is the same lake ingested with every index deleted before each run (the path without
an index), and the owners written out from the rule itself (event date within the window of the
landing date, else the landing date)."""

from __future__ import annotations

import gzip
import os
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.lib.ingest import owner_index
from pipelines.lib.ingest.landing import (
    READS_DAYS_AFTER,
    READS_DAYS_BEFORE,
    RETIRED_MARKER,
    landing_dates,
    reading_partitions,
)
from pipelines.lib.maintenance.retention import Windows, run_retention
from tests.conftest import DAY, LakeHelper, event, line

TYPES = ("request", "ranking", "impression", "click", "error")
LANDING = [DAY + timedelta(days=n) for n in range(-2, 4)]  # every landing date D-1 .. D+2 reads
PARTITIONS = [DAY + timedelta(days=n) for n in range(-1, 2)]


def _owner(event_date: date | None, landing_dt: date) -> date:
    """The rule, written out: a line belongs to its event date when the partitions reading its
    landing date include it, else to the landing date."""
    lo = landing_dt - timedelta(days=READS_DAYS_AFTER)
    hi = landing_dt + timedelta(days=READS_DAYS_BEFORE)
    return event_date if event_date is not None and lo <= event_date <= hi else landing_dt


def _land_days(lake: LakeHelper, seed: int) -> dict[str, dict[int, date]]:
    """Six landing days of mixed lines (on time, late, early, far off, broken, duplicated, blank);
    returns each file's expected owner per non-blank line number."""
    rng = random.Random(seed)
    expected: dict[str, dict[int, date]] = {}
    for dt in LANDING:
        lines: list[bytes] = []
        owners: dict[int, date] = {}
        previous: tuple[bytes, date] | None = None
        for n in range(1, 61):
            roll = rng.random()
            if roll < 0.05:
                lines.append(b"")  # blank: counted, never staged, never indexed
                continue
            if roll < 0.12:
                lines.append(b'{"event_type": "click", broken')
                owners[n] = dt  # no readable date: its landing date owns it
                continue
            if previous is not None and roll < 0.2:
                text, day = previous  # a duplicate of the line before
            else:
                day = dt + timedelta(days=rng.choice([0, 0, 0, -1, -2, 1, -5, 4]))
                text = line(event(rng.choice(TYPES), day, seconds=rng.uniform(0, 86399)))
            previous = (text, day)
            lines.append(text)
            owners[n] = _owner(day, dt)
        expected[lake.land(dt, "part-0.jsonl", lines)] = owners
    return expected


def _published(lake: LakeHelper, days: list[date]) -> dict[str, list]:
    out: dict[str, list] = {}
    for day in days:
        for table in [*(f"events/event_type={t}" for t in TYPES), "quarantine", "ledger"]:
            path = lake.root / f"{table}/event_date={day}/part-00000.parquet"
            rows = pq.read_table(path).to_pylist()
            out[f"{table}/{day}"] = sorted(rows, key=repr)
    return out


def _index_files(root: Path) -> list[Path]:
    return sorted((root / owner_index.INDEX_ROOT).rglob("*.parquet"))


def _ingest_all(lake: LakeHelper, *, index: bool) -> None:
    for day in PARTITIONS:
        if not index:
            shutil.rmtree(lake.root / owner_index.INDEX_ROOT, ignore_errors=True)
        lake.ingest(day)
    if not index:
        shutil.rmtree(lake.root / owner_index.INDEX_ROOT, ignore_errors=True)


@pytest.mark.parametrize("seed", range(6))
def test_partitions_read_through_the_index_publish_what_they_publish_without_it(tmp_path, seed):
    with_index, without = LakeHelper(tmp_path / "a"), LakeHelper(tmp_path / "b")
    _land_days(with_index, seed)
    _land_days(without, seed)
    shutil.copytree(with_index.root / "landing", without.root / "landing", dirs_exist_ok=True)
    _ingest_all(with_index, index=True)
    _ingest_all(without, index=False)
    assert _index_files(with_index.root), "the first partition indexed the files it read"
    assert not _index_files(without.root)
    a, b = _published(with_index, PARTITIONS), _published(without, PARTITIONS)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_the_index_records_each_lines_owner_by_the_rule(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    expected = _land_days(lake, seed=11)
    lake.ingest(DAY)  # reads landing D-1 .. D+2: indexes those four files
    read = {str(f) for f in (lake.root / owner_index.INDEX_ROOT).rglob("*.parquet")}
    assert len(read) == len(landing_dates(DAY))
    for path, owners in expected.items():
        index = lake.root / f"{owner_index.INDEX_ROOT}/{path}.parquet"
        if date.fromisoformat(path.split("dt=")[1][:10]) not in landing_dates(DAY):
            assert not index.exists()
            continue
        table = pq.read_table(index).to_pylist()
        assert {r["line_no"]: r["owning_date"] for r in table} == owners


def test_a_partition_skips_the_lines_the_index_gives_away(tmp_path, monkeypatch):
    lake = LakeHelper(tmp_path / "lake")
    expected = _land_days(lake, seed=5)
    lake.ingest(DAY)
    parsed: list[int] = []
    real = owner_index.others_lines

    def counting(*args, **kwargs):
        found = real(*args, **kwargs)
        parsed.append(-1 if found is None else int(found.sum()))
        return found

    monkeypatch.setattr(owner_index, "others_lines", counting)
    lake.ingest(DAY + timedelta(days=1))
    # Landing D .. D+2 were indexed by D's run; D+3 is new to this one.
    others = {
        path: sum(1 for o in owners.values() if o != DAY + timedelta(days=1))
        for path, owners in expected.items()
    }
    dts = landing_dates(DAY + timedelta(days=1))
    want = [
        others[f"landing/dt={dt}/part-0.jsonl"] if dt <= DAY + timedelta(days=2) else -1
        for dt in dts
    ]
    assert parsed == want


def test_a_changed_file_is_read_afresh(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    lake.land(DAY, "a.jsonl", [line(event("click", DAY - timedelta(days=1)))])
    lake.ingest(DAY)  # indexes a.jsonl: its one line belongs to D-1
    # Same name, new content: a line of D now. A stale index would skip it as D-1's.
    path = lake.root / "landing" / f"dt={DAY}" / "a.jsonl"
    before = os.stat(path)
    path.write_bytes(line(event("click", DAY)) + b"\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert lake.ingest(DAY).rows == {
        "request": 0,
        "ranking": 0,
        "impression": 0,
        "click": 1,
        "error": 0,
    }


def test_an_index_that_does_not_match_the_file_is_ignored(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    lake.land(DAY, "a.jsonl", [line(event("click", DAY))])
    lake.ingest(DAY)
    [index] = _index_files(lake.root)
    # The index rewritten to give the line to D-1, its identity key gone: were it used, D would
    # skip the line.
    table = pq.read_table(index)
    moved = pa.table(
        {"line_no": table["line_no"], "owning_date": [DAY - timedelta(days=1)] * table.num_rows},
        schema=owner_index.OWNERS_SCHEMA,
    )
    pq.write_table(moved, index)
    assert lake.ingest(DAY).rows["click"] == 1


def test_no_index_for_a_file_cut_short(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    data = gzip.compress(b"\n".join(line(event("click", DAY)) for _ in range(200)) + b"\n")
    lake.land(DAY, "cut.jsonl.gz", data[: len(data) // 2])
    result = lake.ingest(DAY)
    assert result.truncated_files
    assert not _index_files(lake.root)


def test_retention_deletes_a_landing_dates_index_with_it(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    lake.land(DAY, "a.jsonl", [line(event("click", DAY))])
    for day in reading_partitions(DAY):  # all of them: landing D may then retire
        lake.ingest(day)
    assert (lake.root / owner_index.index_dir(DAY)).is_dir()
    # Far after any file's time: retention is judged against the ledgers' write times.
    run_retention(
        lake.lake,
        Windows(),
        now=datetime(2100, 1, 1, tzinfo=UTC),
        first_partition=min(reading_partitions(DAY)),
        run_id="test",
        dry_run=False,
    )
    assert (lake.root / "landing" / f"dt={DAY}" / RETIRED_MARKER).exists()
    assert not (lake.root / owner_index.index_dir(DAY)).exists()
