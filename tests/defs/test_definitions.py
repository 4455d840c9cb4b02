"""The code location loads with the expected assets, checks and resources, and bad configuration
fails fast with a message that says what to set."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import dagster as dg
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest import keyring_config
from pipelines.lib.lake import settings
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import DAY, event, line

EVENT_TYPES = ["request", "ranking", "impression", "click", "error"]
INGEST_ASSETS = {*EVENT_TYPES, "quarantine", "ledger"}
ROLLUP_ASSETS = {
    "traffic_daily",
    "traffic_parts",
    "traffic_hourly",
    "errors_daily",
    "traffic_weekly",
    "experiments_weekly",
    "traffic_monthly",
    "compliance_monthly",
}
REPORT_ASSETS = {"report_daily", "report_weekly"}
SLO_METRICS = ["latency_p95_ms", "latency_p99_ms", "error_rate", "ctr", "quarantine_share"]
SLO_CHECKS = {
    *(f"slo_{m}" for m in [*SLO_METRICS, "late_share"]),
    *(
        f"anomaly_{m}"
        for m in ["requests", "impressions", "clicks", "errors", *SLO_METRICS, "late_share"]
    ),
}


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> dg.Definitions:
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path / "lake"))
    from pipelines.definitions import defs as loaded

    return loaded


def test_definitions_load_with_expected_keys(defs):
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    others = {"contracts", "catalog", "partner_bundle"}
    assert keys == INGEST_ASSETS | ROLLUP_ASSETS | REPORT_ASSETS | others
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    gates = {
        ("ledger", "ledger_balances"),
        ("contracts", "completeness"),
        ("contracts", "consistency"),
        ("contracts", "validity"),
        ("contracts", "timeliness"),
    }
    daily = INGEST_ASSETS | {"contracts", "traffic_daily", "traffic_parts", "traffic_hourly"}
    freshness = {(name, "freshness_check") for name in daily | {"errors_daily"}}
    compaction = {(t, "compaction_preserved_rows") for t in EVENT_TYPES}
    slo = {("traffic_daily", name) for name in SLO_CHECKS}
    warnings = {("ledger", "landing_files_read")}
    assert checks == gates | freshness | compaction | slo | warnings
    # Gates block what depends on the day; freshness and compaction's proof are watched by their
    # own sensor and job, and no job that builds a day runs them.
    blocking = {
        (k.asset_key.to_user_string(), k.name)
        for k in graph.asset_check_keys
        if graph.get_check_spec(k).blocking
    }
    assert blocking == gates
    assert set(defs.resources) == {
        "lake", "pii", "duckdb", "contracts", "rollups", "catalog", "retention", "compaction",
        "privacy", "slo", "alerts", "reports",
    }  # fmt: skip


def test_operations_are_scheduled_sensed_and_on_by_default(defs):
    repo = defs.get_repository_def()
    assert {s.name: s.cron_schedule for s in repo.schedule_defs} == {
        "daily_lake_schedule": "0 2 * * *",
        "retention_daily": "0 3 * * *",
        "weekly_rollups_schedule": "0 4 * * 1",
        "monthly_rollups_schedule": "0 5 1 * *",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "landing_sensor",
        "day_publish_recovery",
        "automation",
        "freshness_checks_sensor",
        "compaction_sensor",
        "erasure_requests_sensor",
        "alerts_failed_runs",
        "alerts_succeeded_runs",
    }
    assert all(s.default_status.value == "RUNNING" for s in repo.schedule_defs)
    assert all(s.default_status.value == "RUNNING" for s in repo.sensor_defs)
    jobs = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert jobs == {
        "daily_lake", "ingest_daily", "contracts_daily", "rollups_daily", "rollups_weekly",
        "rollups_monthly", "retention", "compact", "erase_users", "export_user",
        "replay_quarantine", "reports_daily", "reports_weekly", "refresh_catalog",
        "daily_build", "freshness_checks", "rollups_weekly_automated",
        "rollups_monthly_automated", "reports_daily_automated", "reports_weekly_automated",
        "refresh_catalog_automated", "partner_bundle_automated",
    }  # fmt: skip
    # The automation sensor launches named jobs only: no asset or check carries a condition (it
    # would run in Dagster's implicit __ASSET_JOB), the sensor claims every automated job.
    graph = defs.resolve_asset_graph()
    assert not [k for k in graph.asset_check_keys if graph.get(k).automation_condition]
    assert not [k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition]
    automated = {j.name for j in repo.get_all_jobs() if j.automation_condition is not None}
    assert automated == {j for j in jobs if j.endswith("_automated")}
    assert {k.job_name for k in repo.get_sensor_def("automation").asset_job_keys} == automated
    for name in ("rollups_weekly", "rollups_monthly"):
        twin = repo.get_job(f"{name}_automated")
        assert twin.automation_condition.get_label() == "rebuild when one of its days changed"
        assert twin.partitions_def == repo.get_job(name).partitions_def
    # Each twin builds, and checks, exactly what its sibling does.
    for name in automated - {"partner_bundle_automated"}:
        twin, sibling = (
            repo.get_job(n).asset_layer.asset_graph for n in (name, name.removesuffix("_automated"))
        )
        assert twin.executable_asset_keys == sibling.executable_asset_keys, name
        assert twin.asset_check_keys == sibling.asset_check_keys, name
    job_checks = {
        k.name for k in repo.get_job("daily_lake").asset_layer.asset_graph.asset_check_keys
    }
    assert (
        job_checks
        == {
            "ledger_balances",
            "landing_files_read",
            "completeness",
            "consistency",
            "validity",
            "timeliness",
        }
        | SLO_CHECKS
    )


def test_every_asset_is_described_grouped_owned_and_kinded(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        name = key.to_user_string()
        group = (
            "rollups"
            if name in ROLLUP_ASSETS
            else name
            if name in ("contracts", "catalog")
            else "bundles"
            if name == "partner_bundle"
            else "reports"
            if name in REPORT_ASSETS
            else "ingest"
        )
        assert node.group_name == group, key
        assert node.owners == ["team:data-platform"], key
        # The catalog is a DuckDB file of views and reports are Markdown/HTML: no Parquet.
        kinds = (
            {"duckdb"}
            if name == "catalog"
            else {"duckdb", "html", "markdown"}
            if name in REPORT_ASSETS
            else {"duckdb", "parquet"}
        )
        assert kinds <= set(node.kinds), key


def test_weekly_and_monthly_rollups_depend_on_exactly_their_days(defs):
    graph = defs.resolve_asset_graph()
    week = graph.get_parents_partitions(dg.AssetKey("traffic_weekly"), "2025-06-02")
    days = {p.partition_key for p in week.parent_partitions if p.asset_key.path == ["click"]}
    assert days == {f"2025-06-0{d}" for d in range(2, 9)}
    month = graph.get_parents_partitions(dg.AssetKey("traffic_monthly"), "2025-06-01")
    june = {p.partition_key for p in month.parent_partitions if p.asset_key.path == ["request"]}
    assert len(june) == 30 and min(june) == "2025-06-01" and max(june) == "2025-06-30"
    daily = graph.get_parents_partitions(dg.AssetKey("traffic_daily"), "2025-06-02")
    assert {(p.asset_key.path[0], p.partition_key) for p in daily.parent_partitions} >= {
        ("contracts", "2025-06-02"),
        ("request", "2025-06-02"),
    }


def test_a_late_day_marks_exactly_its_week_and_month(defs):
    graph = defs.resolve_asset_graph()
    children = graph.get_children_partitions(dg.AssetKey("click"), "2025-06-04")
    by_asset: dict[str, set[str]] = {}
    for child in children:
        by_asset.setdefault(child.asset_key.to_user_string(), set()).add(child.partition_key)
    assert by_asset["traffic_weekly"] == {"2025-06-02"}
    assert by_asset["traffic_monthly"] == {"2025-06-01"}
    assert by_asset["traffic_daily"] == {"2025-06-04"}
    # The contracts of the neighbouring days join across midnight into this day.
    assert by_asset["contracts"] == {"2025-06-03", "2025-06-04", "2025-06-05"}


def test_event_assets_carry_their_column_schema(defs):
    graph = defs.resolve_asset_graph()
    schema = graph.get(dg.AssetKey("click")).metadata["dagster/column_schema"]
    names = [c.name for c in schema.columns]
    assert names[:4] == ["event_id", "event_type", "schema_version", "timestamp_ms"]
    assert "pii_key_id" in names and "landing_file" in names
    user = next(c for c in schema.columns if c.name == "user_id")
    assert user.description.startswith("[PII high, hash]")


def test_first_partition_date_is_configuration(monkeypatch):
    monkeypatch.delenv("TELEMETRY_FIRST_DATE", raising=False)
    assert daily_partitions().start.date() == date(2025, 1, 1)
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "2019-03-01")
    assert daily_partitions().get_first_partition_key() == "2019-03-01"
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "March 2019")
    with pytest.raises(ConfigError, match=r"TELEMETRY_FIRST_DATE=.*YYYY-MM-DD"):
        daily_partitions()


def _run(lake, pii: PiiResource, instance: dg.DagsterInstance | None = None):
    lake.land(DAY, "a.jsonl", [line(event("click"))])
    return dg.materialize(
        [build_ingest_assets(daily_partitions())],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": pii,
            "duckdb": DuckDBSettings(),
        },
        partition_key=DAY.isoformat(),
        raise_on_error=False,
        instance=instance,
    )


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)


def test_production_without_key_fails_at_once_naming_the_variable(lake):
    result = _run(lake, PiiResource(environment="production"))
    assert not result.success
    assert "TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production" in _failure_text(result)
    assert not (lake.root / "events").exists()  # failed before touching data


def test_short_key_is_refused(lake):
    result = _run(lake, PiiResource(key="too-short"))
    assert not result.success
    assert "TELEMETRY_PII_KEY must be at least 32 bytes" in _failure_text(result)


def test_development_default_key_warns(lake):
    with dg.instance_for_test() as instance:
        result = _run(lake, PiiResource(), instance)
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(keyring_config.DEV_KEY_WARNING in m for m in messages)


def test_lake_root_rejects_unknown_schemes():
    with pytest.raises(ConfigError, match="TELEMETRY_LAKE_ROOT"):
        settings.lake_root("gs://bucket/lake", "/tmp/x")
    assert settings.lake_root(None, "/tmp/x") == "/tmp/x"


def test_code_location_validates_like_dagster_dev_loads_it(tmp_path):
    # `dagster dev` from the project root loads pyproject's [tool.dagster] module; validate it
    # the same way, in a separate process with this project's dagster.yaml as instance config.
    env = {**os.environ, "DAGSTER_HOME": str(PROJECT_ROOT), "TELEMETRY_LAKE_ROOT": str(tmp_path)}
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Validation successful for code location telemetry_lake" in result.stderr + result.stdout


def test_ingest_job_is_described_and_assets_link_to_their_source(defs):
    job = defs.resolve_job_def("ingest_daily")
    assert "Ingest one day" in job.description
    graph = defs.resolve_asset_graph()
    refs = graph.get(dg.AssetKey("click")).metadata["dagster/code_references"]
    assert any(
        r.file_path.endswith("pipelines/defs/ingest/assets.py") for r in refs.code_references
    )
    for name in ("quarantine", "ledger"):
        schema = graph.get(dg.AssetKey(name)).metadata["dagster/column_schema"]
        assert "landing_file" in [c.name for c in schema.columns]


def test_contracts_job_runs_the_contracts_group_daily(defs):
    job = defs.resolve_job_def("contracts_daily")
    assert "contracts" in job.description
    assert job.partitions_def.get_first_partition_key() == "2025-01-01"
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("contracts")).group_name == "contracts"


def test_assets_are_kinded_s3_when_the_lake_is_on_s3(monkeypatch):
    from pipelines.defs.ingest.assets import defs as ingest_defs

    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", "s3://bucket/lake")
    [ingest] = ingest_defs().assets
    assert ingest.specs_by_key[dg.AssetKey("click")].kinds == {"s3", "duckdb", "parquet"}
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", "/tmp/lake")
    [ingest] = ingest_defs().assets
    assert ingest.specs_by_key[dg.AssetKey("click")].kinds == {"duckdb", "parquet"}


def test_the_executor_is_deployment_configuration(monkeypatch):
    from pipelines.defs import executor, resources

    monkeypatch.setenv("TELEMETRY_EXECUTOR", "k8s")
    assert executor.defs().executor.name == "k8s"
    monkeypatch.setenv("TELEMETRY_EXECUTOR", "multiprocess")
    assert executor.defs().executor.name == "multiprocess"
    monkeypatch.setenv("TELEMETRY_EXECUTOR", "in_process")
    assert executor.defs().executor.name == "in_process"
    monkeypatch.setenv("TELEMETRY_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="TELEMETRY_EXECUTOR='celery': set one of multiprocess"):
        executor.defs()
    # The per-run DuckDB bounds come from the environment too.
    monkeypatch.setenv("TELEMETRY_DUCKDB_MEMORY_LIMIT", "512MB")
    monkeypatch.setenv("TELEMETRY_DUCKDB_THREADS", "1")
    with dg.build_resources({"duckdb": resources.defs().resources["duckdb"]}) as built:
        assert (built.duckdb.memory_limit, built.duckdb.threads) == ("512MB", 1)
