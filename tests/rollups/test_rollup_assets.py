"""Rollup assets through real Dagster runs into a tmp_path lake: a week of generated events,
read back; every column documented; row counts as docs/contracts/rollups.md states them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.partitions import daily_partitions, monthly_partitions, weekly_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, RollupsResource
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.columns import definition
from pipelines.lib.rollups.run import DAY, MODELS, MONTH, WEEK, rollup_file
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from pipelines.lib.schemas.registry import load_event_schemas

MONDAY = date(2025, 6, 2)
JUNE = date(2025, 6, 1)
STARTS = {DAY: MONDAY, WEEK: MONDAY, MONTH: JUNE}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = str(tmp_path_factory.mktemp("rollups") / "lake")
    generate(SampleConfig(start=MONDAY, days=7, requests_per_day=150), root)
    lake = Lake(root)
    for n in range(-1, 30):  # all of June (a month's rollup needs every day) and May 31
        ingest_partition(lake, JUNE + timedelta(days=n), PiiKey(pii.DEV_KEY), IngestSettings())
    partitions = {DAY: daily_partitions(), WEEK: weekly_partitions(), MONTH: monthly_partitions()}
    resources = {
        "lake": LakeResource(root=root),
        "rollups": RollupsResource(),
        "duckdb": DuckDBSettings(memory_limit="1GB"),
    }
    # Every day's rollups first: weeks and months are merged from their days.
    keys = {DAY: [JUNE + timedelta(days=n) for n in range(30)], WEEK: [MONDAY], MONTH: [JUNE]}
    for grain, starts in keys.items():
        assets = [build_rollup_asset(m, partitions[grain]) for m in MODELS if m.grain == grain]
        for start in starts:
            result = dg.materialize(assets, resources=resources, partition_key=start.isoformat())
            assert result.success
            assert len(result.get_asset_materialization_events()) == len(assets)
    return lake


def _read(lake: Lake, model) -> list[dict]:
    path = Path(lake.path(rollup_file(model.name, model.grain, STARTS[model.grain])))
    return pq.read_table(path).to_pylist()


def _events(lake: Lake, event_type: str, first: date, last: date) -> list[dict]:
    rows = []
    day = first
    while day <= last:
        path = f"{lake.root}/events/event_type={event_type}/event_date={day}/part-00000.parquet"
        rows += pq.read_table(path).to_pylist()
        day += timedelta(days=1)
    return rows


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_every_column_is_documented_and_every_definition_used(lake, model):
    path = lake.path(rollup_file(model.name, model.grain, STARTS[model.grain]))
    names = pq.read_schema(path).names
    assert [n for n in names if definition(model, n) is None] == []
    assert set(model.columns) <= set(names)


@pytest.mark.parametrize("grain", [DAY, WEEK, MONTH])
def test_traffic_rows_are_one_per_dimension_combination_plus_all_traffic(lake, grain):
    [model] = [
        m
        for m in MODELS
        if m.name == f"traffic_{ {DAY: 'daily', WEEK: 'weekly', MONTH: 'monthly'}[grain] }"
    ]
    start = STARTS[grain]
    last = start + timedelta(days={DAY: 0, WEEK: 6, MONTH: 29}[grain])
    requests = _events(lake, "request", start - timedelta(days=1), last)
    dims = {
        r["request_id"]: (r["experiment_id"], r["bucket"], r["surface"], r["device_type"])
        for r in sorted(requests, key=lambda r: -r["timestamp_ms"])
    }
    found = [
        dims.get(event.get("request_id"))
        for event_type in ("request", "ranking", "impression", "click", "error")
        for event in _events(lake, event_type, start, last)
    ]
    combos = {f for f in found if f is not None}
    unknown = None in found  # an orphan, or an error without a request_id
    rows = _read(lake, model)
    assert len(rows) == 1 + len(combos) + unknown
    [everything] = [r for r in rows if r["is_all_traffic"]]
    assert everything["requests"] == len(_events(lake, "request", start, last))
    assert everything["clicks"] == len(_events(lake, "click", start, last))


def test_hourly_and_error_rows_match_their_formulas(lake):
    by_name = {m.name: m for m in MODELS}
    hours = set()
    for event_type in ("request", "ranking", "impression", "click", "error"):
        hours |= {e["timestamp_ms"] // 3_600_000 for e in _events(lake, event_type, MONDAY, MONDAY)}
    assert len(_read(lake, by_name["traffic_hourly"])) == len(hours) <= 24
    errors = _events(lake, "error", MONDAY, MONDAY)
    codes = {(e["component"], e["severity"], e["error_code"]) for e in errors}
    assert len(_read(lake, by_name["errors_daily"])) == len(codes)


def test_experiment_and_compliance_rows_match_their_formulas(lake):
    by_name = {m.name: m for m in MODELS}
    week = _events(lake, "request", MONDAY, MONDAY + timedelta(days=6))
    arms = {(r["experiment_id"], r["bucket"]) for r in week if r["experiment_id"]}
    rows = _read(lake, by_name["experiments_weekly"])
    assert {(r["experiment_id"], r["bucket"]) for r in rows} == arms
    assert all(r["srm_p_value"] is not None for r in rows)

    compliance = _read(lake, by_name["compliance_monthly"])
    classes = {
        (t, spec.get("x-pii", "none"))
        for t, schema in load_event_schemas().items()
        for spec in schema.properties.values()
    }
    quarantine = pq.read_table(
        f"{lake.root}/quarantine", partitioning="hive", columns=["reason", "event_date"]
    ).to_pylist()
    reasons = {q["reason"] for q in quarantine if str(q["event_date"]).startswith("2025-06")}
    sections = [r["section"] for r in compliance]
    assert sections.count("stored_rows") == len(classes)
    assert sections.count("quarantined") == len(reasons)
    assert sections.count("duplicates") == 1
    assert sections.count("contract_violations") == 0  # no contracts were run in this lake


@pytest.mark.parametrize("name", ["traffic_weekly", "traffic_monthly"])
def test_weekly_and_monthly_changes_are_null_without_a_previous_period(lake, name):
    [model] = [m for m in MODELS if m.name == name]
    rows = _read(lake, model)
    changes = {k: v for r in rows for k, v in r.items() if k.endswith("_change")}
    assert changes and set(changes.values()) == {None}
