"""The ledger check fails when a line is unaccounted for, and says which landing file."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.landing import reading_partitions
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.lake.paths import events_file, ledger_file
from tests.conftest import DAY, event, line


def _rewrite(path, change) -> None:
    rows = pq.read_table(path).to_pylist()
    schema = pq.read_schema(path)
    pq.write_table(pa.Table.from_pylist(change(rows), schema=schema), path)


def _land_and_ingest(lake) -> str:
    name = lake.land(DAY, "a.jsonl", [line(event("click")) for _ in range(10)] + [b"oops"])
    lake.ingest()
    return name


def test_unbalanced_ledger_row_fails_with_the_file(lake):
    name = _land_and_ingest(lake)
    assert audit_ledger(lake.lake, DAY).passed

    def add_a_line(rows):
        rows[0]["lines_taken"] += 1
        return rows

    _rewrite(lake.root / ledger_file(DAY), add_a_line)
    audit = audit_ledger(lake.lake, DAY)
    assert not audit.passed
    assert audit.unbalanced == [
        {
            "landing_file": name,
            "lines_taken": 12,
            "rows_written": 10,
            "quarantined": 1,
            "duplicates": 0,
        }
    ]
    assert audit.metadata()["unbalanced_files"] == 1


def test_a_row_missing_from_the_published_table_fails(lake):
    _land_and_ingest(lake)
    _rewrite(lake.root / events_file("click", DAY), lambda rows: rows[1:])
    audit = audit_ledger(lake.lake, DAY)
    assert audit.output_mismatches == [{"table": "click", "ledger": 10, "published": 9}]


def test_a_landing_file_that_changed_between_partitions_fails(lake):
    name = lake.land(DAY, "a.jsonl", [line(event("click"))])
    for day in reading_partitions(DAY)[:2]:
        lake.ingest(day)
    # The file grows after two of the four partitions that read it were built.
    (lake.root / name).write_bytes((lake.root / name).read_bytes() + line(event("click")) + b"\n")
    for day in reading_partitions(DAY)[2:]:
        lake.ingest(day)
    audit = audit_ledger(lake.lake, DAY + timedelta(days=1))
    [mismatch] = audit.file_total_mismatches
    assert mismatch["landing_file"] == name and mismatch["versions_seen"] == 2


def test_the_dagster_check_fails_the_run_that_finds_a_changed_file(lake):
    name = lake.land(DAY, "a.jsonl", [line(event("click"))])
    first, *middle, last = reading_partitions(DAY)
    for day in [first, *middle]:
        lake.ingest(day)
    (lake.root / name).write_bytes((lake.root / name).read_bytes() + line(event("click")) + b"\n")
    partitions = daily_partitions()
    result = dg.materialize(
        [build_ingest_assets(partitions), build_ledger_check(partitions)],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(),
        },
        partition_key=last.isoformat(),
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == LEDGER_BALANCES and not evaluation.passed
    [mismatch] = evaluation.metadata["sample_file_total_mismatches"].value
    assert mismatch["landing_file"] == name and mismatch["versions_seen"] == 2
