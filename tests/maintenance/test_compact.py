"""Compaction equality: a partition split across many small files is rewritten into sorted files
holding exactly the same rows (count, checksum and multiset), atomically, and the compact job and
its sensor record and request it as promised."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import uuid
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.keys import COMPACTION_PRESERVED_ROWS
from pipelines.defs.maintenance.compact import (
    COMPACT_OP,
    build_compact_job,
    build_compaction_sensor,
)
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import CompactionResource, DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake import storage
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import events_dir
from pipelines.lib.maintenance import compact
from pipelines.lib.maintenance.compact import (
    ChecksumMismatchError,
    CompactionSettings,
    compact_partition,
    needs_compaction,
    verify_partition,
)
from tests.conftest import DAY, KEY, event, line, new_bucket

ROWS = 600
SMALL_FILES = 12
ROW_GROUP_ROWS = 100
# One row group per file: every file is cut after its first row group, so the count is exact.
ONE_GROUP_PER_FILE = CompactionSettings(target_file_bytes=1, row_group_rows=ROW_GROUP_ROWS)


def _land_impressions(lake) -> None:
    rng = random.Random(7)
    requests = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40)]
    lines = [
        line(event("impression", request_id=rng.choice(requests), seconds=rng.randrange(86_000)))
        for _ in range(ROWS)
    ]
    lines.append(line(event("click", request_id=requests[0])))
    lake.land(DAY, "a.jsonl", lines)


def _split_into_small_files(lake, event_type: str = "impression") -> pa.Table:
    """Replace the partition ingest wrote by SMALL_FILES files of shuffled rows (what many
    landing files would leave); returns its rows."""
    folder = lake.root / events_dir(event_type, DAY)
    table = pq.read_table(folder / "part-00000.parquet")
    order = list(range(table.num_rows))
    random.Random(3).shuffle(order)
    shuffled = table.take(order)
    (folder / "part-00000.parquet").unlink()
    step = -(-table.num_rows // SMALL_FILES)
    for n in range(SMALL_FILES):
        pq.write_table(shuffled.slice(n * step, step), folder / f"part-{n:05d}.parquet")
    return table


@pytest.fixture
def split_lake(lake):
    _land_impressions(lake)
    lake.ingest()
    lake.original = _split_into_small_files(lake)
    return lake


def _files(lake, event_type: str = "impression") -> list[Path]:
    return sorted((lake.root / events_dir(event_type, DAY)).glob("*.parquet"))


def _multiset(table: pa.Table) -> list[str]:
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in table.to_pylist())


def _sort_key(row: dict) -> tuple:
    return (row["request_id"] is None, row["request_id"], row["timestamp_ms"], row["event_id"])


def test_many_small_files_compact_into_sorted_files_with_the_same_rows(split_lake):
    lake = split_lake
    result = compact_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)

    files = _files(lake)
    assert (result.compacted, result.files_before) == (True, SMALL_FILES)
    assert result.files_after == len(files) == ROWS // ROW_GROUP_ROWS == 6
    assert result.before == result.after and result.after.rows == ROWS
    assert result.bytes_after == sum(p.stat().st_size for p in files)
    assert [p.name.rsplit("-", 1)[0] for p in files] == [f"part-{n:05d}" for n in range(6)]

    tables = [pq.read_table(p) for p in files]
    rows = [r for t in tables for r in t.to_pylist()]
    assert rows == sorted(rows, key=_sort_key)  # sorted within and across files
    assert [t.num_rows for t in tables] == [ROW_GROUP_ROWS] * 6
    merged = pa.concat_tables(tables)
    assert merged.schema.remove_metadata() == lake.original.schema.remove_metadata()
    assert _multiset(merged) == _multiset(lake.original)

    # Row-group statistics prune a request_id lookup: the groups' ranges do not overlap.
    ranges = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.names.index("request_id")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            ranges.append((stats.min, stats.max))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
    stamp = pq.ParquetFile(files[0]).metadata.metadata
    assert stamp[b"telemetry.sorted_by"] == b"request_id,timestamp_ms,event_id"
    assert stamp[b"telemetry.partition_rows"] == str(ROWS).encode()

    verified = verify_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)
    assert verified.passed and verified.found == verified.stamped == result.before


def test_the_default_target_makes_one_file_and_a_second_run_skips_it(split_lake):
    lake = split_lake
    settings = CompactionSettings(max_files=8)
    assert needs_compaction(lake.lake, "impression", DAY, settings)  # 12 files > 8
    assert not needs_compaction(lake.lake, "click", DAY, settings)  # ingest's one small file

    first = compact_partition(lake.lake, "impression", DAY, settings)
    [only] = _files(lake)
    assert (first.files_after, pq.ParquetFile(only).metadata.num_rows) == (1, ROWS)
    assert not needs_compaction(lake.lake, "impression", DAY, settings)

    again = compact_partition(lake.lake, "impression", DAY, settings)
    assert (again.compacted, again.before, again.after) == (False, first.after, first.after)
    assert _files(lake) == [only] and only.stat().st_mtime_ns == only.stat().st_mtime_ns


def test_reingest_after_compaction_leaves_no_stale_file(split_lake):
    lake = split_lake
    compact_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)
    assert len(_files(lake)) == 6

    result = lake.ingest()
    assert [p.name for p in _files(lake)] == ["part-00000.parquet"]
    assert result.rows["impression"] == ROWS
    assert pq.read_table(lake.root / events_dir("impression", DAY)).num_rows == ROWS
    assert audit_ledger(lake.lake, DAY).passed


def test_a_crash_between_staging_and_swap_keeps_the_previous_version(split_lake, monkeypatch):
    lake = split_lake
    before = {p.name: p.read_bytes() for p in _files(lake)}

    def crash(staging, final):
        raise OSError("simulated crash between staging and swap")

    monkeypatch.setattr(storage, "_swap_in", crash)
    with pytest.raises(OSError, match="simulated crash"):
        compact_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)

    assert {p.name: p.read_bytes() for p in _files(lake)} == before
    readable = pq.read_table(lake.root / events_dir("impression", DAY))
    assert _multiset(readable) == _multiset(lake.original)
    assert list((lake.root / storage.STAGING_DIR).iterdir()) == []


def test_a_rewrite_that_loses_a_row_is_not_published(split_lake, monkeypatch):
    lake = split_lake
    before = {p.name: p.read_bytes() for p in _files(lake)}
    real_write = compact._write_sorted

    def lose_a_row(*args, **kwargs):
        paths = real_write(*args, **kwargs)
        table = pq.read_table(paths[0])
        pq.write_table(table.slice(1), paths[0])
        return paths

    monkeypatch.setattr(compact, "_write_sorted", lose_a_row)
    with pytest.raises(ChecksumMismatchError, match=rf"{ROWS - 1} rows .* {ROWS}") as caught:
        compact_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)
    assert (caught.value.before.rows, caught.value.after.rows) == (ROWS, ROWS - 1)
    assert {p.name: p.read_bytes() for p in _files(lake)} == before


def test_a_tampered_compacted_partition_fails_verification(split_lake):
    lake = split_lake
    compact_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)
    first = _files(lake)[0]
    table = pq.read_table(first)
    pq.write_table(table.slice(1), first)  # keeps the stamp in the schema metadata
    verified = verify_partition(lake.lake, "impression", DAY, ONE_GROUP_PER_FILE)
    assert not verified.passed
    assert (verified.stamped.rows, verified.found.rows) == (ROWS, ROWS - 1)


@pytest.mark.parametrize("target", [64 << 20, (1 << 30) + 1])
def test_a_target_outside_128_mib_to_1_gib_is_refused_naming_the_setting(target):
    with pytest.raises(ConfigError, match=r"target_file_bytes.*`compaction` resource"):
        CompactionSettings(target_file_bytes=target).validate()
    CompactionSettings(target_file_bytes=128 << 20).validate()
    CompactionSettings(target_file_bytes=1 << 30).validate()


def _resources(lake, **compaction) -> dict:
    return {
        "lake": LakeResource(root=str(lake.root)),
        "duckdb": DuckDBSettings(),
        "compaction": CompactionResource(**compaction),
    }


def test_compact_job_records_the_check_evaluation_and_materialises_nothing(split_lake):
    lake = split_lake
    job = build_compact_job(daily_partitions())
    result = job.execute_in_process(
        partition_key=DAY.isoformat(),
        resources=_resources(lake),
        run_config=dg.RunConfig(ops={COMPACT_OP: {"config": {"event_types": ["impression"]}}}),
    )
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_key, evaluation.check_name) == (
        dg.AssetKey("impression"),
        COMPACTION_PRESERVED_ROWS,
    )
    assert (evaluation.passed, evaluation.partition) == (True, DAY.isoformat())
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert (meta["rows_before"], meta["rows_after"]) == (ROWS, ROWS)
    assert meta["checksum_before"] == meta["checksum_after"]
    assert (meta["files_before"], meta["files_after"]) == (SMALL_FILES, 1)
    assert not result.asset_materializations_for_node(COMPACT_OP)
    assert len(_files(lake)) == 1


def test_compact_job_refuses_a_target_below_128_mib(split_lake):
    job = build_compact_job(daily_partitions())
    result = job.execute_in_process(
        partition_key=DAY.isoformat(),
        resources=_resources(split_lake, target_file_bytes=1),
        raise_on_error=False,
    )
    assert not result.success
    errors = "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)
    assert "compaction target_file_bytes=1 is outside" in errors
    assert len(_files(split_lake)) == SMALL_FILES  # failed before touching data


def test_sensor_requests_the_compact_job_once_per_file_listing(lake):
    _land_impressions(lake)
    instance = dg.DagsterInstance.ephemeral()
    ingest = dg.materialize(
        [build_ingest_assets(daily_partitions())],
        resources={**_resources(lake), "pii": PiiResource()},
        partition_key=DAY.isoformat(),
        instance=instance,
    )
    _split_into_small_files(lake)
    sensor = build_compaction_sensor(build_compact_job(daily_partitions()))

    def evaluate():
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=ingest.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=ingest.dagster_run,
            partition_key=DAY.isoformat(),
            resources=_resources(lake),
        )
        return sensor(context)

    request = evaluate()
    listing = {
        "impression": [
            [f"{events_dir('impression', DAY)}/{p.name}", p.stat().st_size] for p in _files(lake)
        ]
    }
    digest = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"compact:{DAY.isoformat()}:{digest}"
    assert request.partition_key == DAY.isoformat()
    assert request.run_config["ops"][COMPACT_OP]["config"]["event_types"] == ["impression"]
    assert evaluate().run_key == request.run_key  # a repeated tick: the same key, run once

    compact_partition(lake.lake, "impression", DAY, CompactionSettings())
    assert isinstance(evaluate(), dg.SkipReason)


def test_on_s3_a_compaction_replaces_the_partition_with_one_object(
    s3_endpoint, s3_credentials, lake
):
    # S3 has no rename: the sorted rewrite keeps ingest's one deterministic object, which a
    # single PUT replaces, even with a target that splits a local partition after every row group.
    _land_impressions(lake)
    s3 = storage.Lake(
        f"s3://{new_bucket(s3_endpoint)}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}}
    )
    for path in (lake.root / "landing").rglob("*.jsonl"):
        s3.fs.pipe_file(s3.path(str(path.relative_to(lake.root))), path.read_bytes())
    ingest_partition(s3, DAY, KEY, IngestSettings())
    rel = events_dir("impression", DAY)
    before = s3.read_partition(rel)

    result = compact_partition(s3, "impression", DAY, ONE_GROUP_PER_FILE)
    assert result.compacted and result.passed
    assert [f.path for f in s3.parquet_files(rel)] == [f"{rel}/part-00000.parquet"]
    after = s3.read_partition(rel)
    assert _multiset(after) == _multiset(before)
    rows = after.to_pylist()
    assert rows == sorted(rows, key=_sort_key)
    assert compact_partition(s3, "impression", DAY, ONE_GROUP_PER_FILE).compacted is False
