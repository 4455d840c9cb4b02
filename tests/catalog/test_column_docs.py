"""Column schemas and comments everywhere, and runs under named jobs:

* every rollup asset carries its Dagster ``TableSchema`` (``dagster/column_schema``), the same
  columns, types and definitions as docs/contracts/rollups.md;
* every column of every view of every tier's catalog has a comment (``COMMENT ON COLUMN``),
  readable by the analysts' duckdb shell, and every view a ``COMMENT ON VIEW``;
* every run the demo, the schedules and the sensors launch belongs to a named job of the code
  location, never Dagster's ad-hoc ``__ephemeral_asset_job__``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from pipelines import demo_runs
from pipelines.lib.catalog import column_docs, tiers
from pipelines.lib.catalog import views as catalog
from pipelines.lib.contracts.run import QUALITY_SCHEMA, VIOLATIONS_SCHEMA
from pipelines.lib.docs import markdown as md
from pipelines.lib.docs.contract_pages.events import EXTRA_COLUMN_DOCS
from pipelines.lib.docs.contract_pages.rollups import (
    output_schemas,
    render_rollup_columns,
)
from pipelines.lib.ingest.ledger import ledger_schema
from pipelines.lib.ingest.quarantine import QUARANTINE_SCHEMA
from pipelines.lib.lake.paths import PROJECT_ROOT, docs_dir
from pipelines.lib.lake.storage import Lake, write_table
from pipelines.lib.rollups.columns import ROLLUP_COLUMNS_PAGE, definition
from pipelines.lib.rollups.run import MODELS, MONTH, rollup_file
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from pipelines.lib.schemas.registry import event_types, load_event_schemas
from pipelines.lib.setup import demo_plan
from pipelines.lib.setup.demo_plan import DAY, INGEST
from tests.conftest import load_defs

SHELL = Path(sys.executable).parent / "duckdb"  # duckdb-cli 1.5, the analysts' shell
START = date(2025, 6, 2)
UNDESCRIBED = "Not described yet"


@pytest.fixture(scope="module")
def schemas() -> dict[str, pa.Schema]:
    """Each rollup's real output schema (its SQL run over an empty month)."""
    return output_schemas()


# --- Dagster column schemas of the rollups ------------------------------------------------------


def test_the_json_twin_is_what_the_sql_writes(schemas):
    text = (docs_dir() / ROLLUP_COLUMNS_PAGE).read_text(encoding="utf-8")
    assert text == render_rollup_columns(schemas), "run `python -m pipelines.docs`"


def test_every_rollup_asset_carries_the_pages_column_schema(schemas, monkeypatch, tmp_path):
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path))
    graph = load_defs().resolve_asset_graph()
    page = (docs_dir() / "contracts/rollups.md").read_text(encoding="utf-8")
    for model in MODELS:
        schema = graph.get(dg.AssetKey(model.name)).metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema), model.name
        written = schemas[model.name]
        assert [c.name for c in schema.columns] == written.names, model.name
        assert [c.type for c in schema.columns] == [str(f.type) for f in written], model.name
        for column in schema.columns:
            assert column.description, f"{model.name}.{column.name} has no description"
            assert column.description == definition(model, column.name)
            # The page's row for the column says the same.
            cells = (md.code(column.name), md.code(column.type), md.cell(column.description))
            assert "| " + " | ".join(cells) + " |" in page


# --- what the catalog's comments say -------------------------------------------------------------


def test_every_quality_column_is_described():
    stored = {
        "contract_violations": VIOLATIONS_SCHEMA.names,
        "contract_rates": QUALITY_SCHEMA.names,
        "quarantine": QUARANTINE_SCHEMA.names,
        "ledger": ledger_schema(event_types()).names,
    }
    for table, names in stored.items():
        described = column_docs.table_columns(tiers.QUALITY, table)
        # The files' columns and the Hive folder's event_date, no more, no less.
        assert set(described) == {*names, "event_date"}, table
        assert all(described.values()), table


def test_every_event_column_is_described():
    for event_type, schema in load_event_schemas().items():
        described = column_docs.table_columns(tiers.EVENTS, event_type)
        assert set(schema.properties) | set(EXTRA_COLUMN_DOCS) <= set(described)
        assert all(described.values()), event_type


def test_the_catalog_version_follows_the_comments(monkeypatch):
    before = catalog.catalog_version()
    monkeypatch.setitem(column_docs.LEDGER, "duplicates", "Something else.")
    assert catalog.catalog_version() != before


# --- the catalog a named-job run writes ----------------------------------------------------------


class Built(NamedTuple):
    instance_runs: list[str]  # job names of every run
    catalog: Path  # the engineer's file
    results: dict[str, list[str]]  # tier -> undescribed columns, from the run's log


@pytest.fixture(scope="module")
def built(schemas, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """One sample day through the demo's jobs (ingest of it and its neighbours, the day's
    contracts and daily rollups), an empty partition of every other rollup (so every view
    exists), then the catalog job."""
    tmp = tmp_path_factory.mktemp("columns")
    root = tmp / "lake"
    generate(SampleConfig(start=START, days=1, requests_per_day=100, error_rate=0.05), str(root))
    lake = Lake(str(root))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TELEMETRY_LAKE_ROOT", str(root))
        env.setenv("TELEMETRY_CATALOG", str(tmp / "lake.duckdb"))
        env.setenv("TELEMETRY_FIRST_DATE", "2025-06-01")
        env.delenv("TELEMETRY_S3_ENDPOINT_URL", raising=False)
        defs = load_defs()
        days = [START + timedelta(days=n) for n in (-1, 0, 1)]
        jobs = demo_runs.jobs()
        runs = [(jobs[INGEST][0], d) for d in days] + [(jobs[DAY][0], START)]
        with dg.instance_for_test() as instance:
            for job_name, day in runs:
                result = defs.resolve_job_def(job_name).execute_in_process(
                    partition_key=day.isoformat(), instance=instance
                )
                assert result.success, job_name
            for model in MODELS:
                if not lake.fs.glob(lake.path(f"rollups/{model.name}/*/*.parquet")):
                    start = START.replace(day=1) if model.grain == MONTH else START
                    rel = rollup_file(model.name, model.grain, start)
                    write_table(lake, rel, schemas[model.name].empty_table())
            logged: list[str] = []
            result = defs.resolve_job_def("refresh_catalog").execute_in_process(instance=instance)
            assert result.success
            for record in instance.all_logs(result.run_id):
                logged.append(record.user_message or "")
            names = [r.job_name for r in instance.get_runs()]
    undescribed = {
        t: [m for m in logged if f"catalog ({t}): no description" in m] for t in tiers.TIERS
    }
    yield Built(names, tmp / "lake.duckdb", undescribed)


def test_the_runs_are_named_jobs(built):
    assert sorted(set(built.instance_runs)) == ["daily_build", "ingest_daily", "refresh_catalog"]


@pytest.mark.parametrize("tier", tiers.TIERS)
def test_every_column_of_every_view_has_a_comment(built, tier):
    path = tiers.tier_path(str(built.catalog), tier)
    assert built.results[tier] == []
    with duckdb.connect(path, read_only=True) as con:
        views = con.execute(
            "select schema_name, view_name, comment from duckdb_views() where not internal"
        ).fetchall()
        columns = con.execute(
            "select schema_name, table_name, column_name, comment from duckdb_columns() "
            "where not internal"
        ).fetchall()
    expected = {s.qualified for s in catalog.view_specs() if s.exposure(tier) is not None}
    assert {f"{s}.{v}" for s, v, _ in views} == expected
    assert all(comment for *_, comment in views)
    missing = [f"{s}.{t}.{c}" for s, t, c, comment in columns if not comment]
    assert missing == [], f"columns without a comment: {missing}"
    assert not [c for c in columns if c[3].startswith(UNDESCRIBED)]
    if tier == tiers.ENGINEER:
        assert len(columns) > 300  # every table, every column: the check above means something
        comments = {(s, t, c): comment for s, t, c, comment in columns}
        assert comments[("rollups", "traffic_weekly", "ctr_change")] == column_docs.describe(
            "rollups", "traffic_weekly", "ctr_change"
        )
        assert (
            "partition folder week_start" in comments[("rollups", "traffic_weekly", "week_start")]
        )
        assert comments[("events", "request", "user_id")].startswith("The user's identifier")


def test_the_analysts_shell_reads_the_comments(built):
    sql = (
        "select count(*) filter (where coalesce(comment, '') = '') as bare, count(*) as total "
        "from duckdb_columns() where not internal;\n"
        "select comment from duckdb_columns() where schema_name = 'quality' "
        "and table_name = 'ledger' and column_name = 'duplicates';\n"
    )
    result = subprocess.run(
        [str(SHELL), "-readonly", "-csv", "-noheader", str(built.catalog)],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    counts, comment = result.stdout.splitlines()
    bare, total = (int(n) for n in counts.split(","))
    assert bare == 0 and total > 300
    assert comment.strip('"') == column_docs.LEDGER["duplicates"]


# --- named jobs ----------------------------------------------------------------------------------


def test_the_demo_runs_named_jobs_only(monkeypatch, tmp_path):
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path))
    defs = load_defs()
    jobs = demo_runs.jobs()
    assert set(jobs) == set(demo_plan.KINDS)  # a job for every kind of step the demo plans
    for job_name, assets in jobs.values():
        job = defs.resolve_job_def(job_name)  # a named job of the code location
        keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
        assert set(assets) <= keys, job_name
    for module in ("demo.py", "demo_runs.py"):
        source = (PROJECT_ROOT / "pipelines" / module).read_text(encoding="utf-8")
        assert "materialize(" not in source  # dg.materialize runs __ephemeral_asset_job__


def _run_requests(path: Path) -> Iterator[ast.Call]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "RunRequest":
            yield node


def test_schedules_and_sensors_launch_named_jobs(monkeypatch, tmp_path):
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path))
    defs = load_defs()
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    for schedule in defs.schedules or []:
        assert defs.resolve_schedule_def(schedule.name).job_name in jobs, schedule.name
    for sensor in defs.sensors or []:
        # The automation sensor launches the jobs whose conditions it evaluates; an asset's or a
        # check's condition would launch Dagster's implicit __ASSET_JOB: none carries one.
        if isinstance(sensor, dg.AutomationConditionSensorDefinition):
            assert {k.job_name for k in sensor.asset_job_keys} <= jobs, sensor.name
            graph = defs.resolve_asset_graph()
            keys = [*graph.get_all_asset_keys(), *graph.asset_check_keys]
            assert not [k for k in keys if graph.get(k).automation_condition], sensor.name
            continue
        assert all(t.job_name in jobs for t in sensor.targets), sensor.name
    # A RunRequest with an asset selection and no job runs an implicit asset job: none here.
    for path in (PROJECT_ROOT / "pipelines" / "defs").rglob("*.py"):
        for call in _run_requests(path):
            kwargs = {k.arg for k in call.keywords}
            assert "asset_selection" not in kwargs, f"{path}:{call.lineno}"
