"""Late data ripples end to end, through real Dagster runs: one late file re-runs exactly its day
(ingest, contracts, daily rollups), then the automation sensor's jobs rebuild exactly that day's
week and month, and nothing else, each run under a named job. On a tmp_path lake only: what the
ripple adds over a day's run is backend-free (the landing sensor's request, the automation
conditions), and the landing sensor and the runs on S3 (moto) are tests/e2e/test_e2e_sample.py's;
on S3 this module took a CI worker 4-12 minutes (31 days built on moto first)."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pytest

from pipelines.defs.automation.schedules import DAILY_JOB
from pipelines.defs.automation.sensors import build_landing_sensor
from pipelines.defs.resources import LakeResource
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.paths import events_dir, landing_dir
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup
from tests.conftest import KEY, event, line, load_defs

# A Sunday that ends both its week (Mon 08-25 .. Sun 08-31) and its month (August 2025).
D = date(2025, 8, 31)
WEEK = "2025-08-25"
MONTH = "2025-08-01"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def chain(day: date, seconds: float, n: int) -> list[bytes]:
    """n valid request -> ranking -> impression -> click chains on `day`."""
    lines = []
    for i in range(n):
        rid = f"00000000-0000-4000-8000-{day.strftime('%m%d')}{seconds:06.0f}{i:02d}"[:36]
        t = seconds + i
        lines += [
            line(event("request", day, t, request_id=rid)),
            line(event("ranking", day, t + 0.1, request_id=rid)),
            line(event("impression", day, t + 0.2, request_id=rid)),
            line(event("click", day, t + 0.3, request_id=rid)),
        ]
    return lines


class Setting(NamedTuple):
    defs: dg.Definitions
    instance: dg.DagsterInstance
    resource: LakeResource  # the lake the definitions run on, for the sensor's context
    lake: Lake


@pytest.fixture
def setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Setting]:
    root = str(tmp_path / "lake")
    monkeypatch.delenv("TELEMETRY_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", root)
    monkeypatch.setenv("TELEMETRY_CATALOG", str(tmp_path / "lake.duckdb"))
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "2025-08-01")
    defs = load_defs()
    resource = LakeResource(root=root)
    with dg.instance_for_test() as instance:
        yield Setting(defs, instance, resource, resource.lake())


def land(lake: Lake, dt: date, name: str, lines: list[bytes]) -> None:
    """Drop a landing file, on either backend."""
    folder = lake.path(landing_dir(dt))
    lake.fs.makedirs(folder, exist_ok=True)  # a no-op on S3
    lake.fs.pipe_file(f"{folder}/{name}", b"\n".join(lines) + b"\n")


def _materialised(instance: dg.DagsterInstance, run_id: str) -> set[tuple[str, str]]:
    return {
        (m.asset_key.to_user_string(), m.partition)
        for m in (
            e.asset_materialization
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        )
    }


def requested_runs(result) -> set[tuple[str, str | None]]:
    """(job, partition) of every run an evaluation asks for, as the automation sensor launches
    them; each under a named job: a requested asset would run in Dagster's implicit __ASSET_JOB."""
    runs = set()
    for evaluated in result.results:
        if evaluated.true_subset.is_empty:
            continue
        assert isinstance(evaluated.key, dg.AssetJobKey), evaluated.key
        assert not evaluated.key.job_name.startswith("__"), evaluated.key
        subset = evaluated.true_subset
        keys = subset.expensively_compute_partition_keys() if subset.is_partitioned else {None}
        runs |= {(evaluated.key.job_name, key) for key in keys}
    return runs


def test_one_late_file_rebuilds_exactly_its_day_week_and_month(setting: Setting):
    defs, instance, resource, lake = setting
    # August as the daily schedule left it (built directly, for speed), then D through Dagster.
    august = [date(2025, 8, 1) + timedelta(days=n) for n in range(31)]
    for day in august:
        land(lake, day, "part-00000.jsonl", chain(day, 3600, 2 if day < D else 5))
    for day in august:
        ingest_partition(lake, day, KEY, IngestSettings())
        for name in ("traffic_daily", "traffic_parts"):
            build_rollup(lake, MODELS_BY_NAME[name], day)
    daily = defs.resolve_job_def(DAILY_JOB)
    assert daily.execute_in_process(partition_key=D.isoformat(), instance=instance).success
    for job, key in (("rollups_weekly", WEEK), ("rollups_monthly", MONTH)):
        assert (
            defs.resolve_job_def(job)
            .execute_in_process(partition_key=key, instance=instance)
            .success
        )

    # The automation sensor's first look: everything built is up to date.
    settled = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at(2025, 9, 2, 0, 30)
    )
    assert settled.total_requested == 0

    # Two days late, before 02:00: D has been built and has not read the file; 09-01 is
    # neither built nor due; 09-02 and 09-03 are not due.
    sensor = build_landing_sensor(clock=lambda: at(2025, 9, 2, 1))
    context = dg.build_sensor_context(instance=instance, resources={"lake": resource})
    seen = sensor(context)
    assert seen.run_requests == []
    land(lake, date(2025, 9, 2), "part-00000.jsonl", chain(D, 7200, 3))
    context = dg.build_sensor_context(
        instance=instance, cursor=seen.cursor, resources={"lake": resource}
    )
    [request] = sensor(context).run_requests
    assert request.partition_key == D.isoformat()

    rerun = daily.execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags
    )
    assert rerun.success
    rebuilt_day = _materialised(instance, rerun.run_id)
    assert {p for _, p in rebuilt_day} == {D.isoformat()}
    assert {"click", "contracts", "traffic_daily"} <= {a for a, _ in rebuilt_day}
    assert lake.read_partition(events_dir("click", D)).num_rows == 8
    ledger = next(
        m for m in rerun.get_asset_materialization_events() if m.asset_key == dg.AssetKey("ledger")
    )
    # 12 of the day's 32 rows landed after their own date.
    assert ledger.materialization.metadata["late_share"].value == pytest.approx(12 / 32)

    ripple = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at(2025, 9, 2, 1, 30), cursor=settled.cursor
    )
    runs = requested_runs(ripple)
    assert runs == {("rollups_weekly_automated", WEEK), ("rollups_monthly_automated", MONTH)}
    repo = defs.get_repository_def()
    rebuilt = {
        (key.to_user_string(), partition)
        for job, partition in runs
        for key in repo.get_job(job).asset_layer.executable_asset_keys
    }
    assert rebuilt == {
        ("traffic_weekly", WEEK),
        ("experiments_weekly", WEEK),
        ("traffic_monthly", MONTH),
        ("compliance_monthly", MONTH),
    }
    # Asked once: the next tick, those runs not over (or failed), asks for nothing more.
    again = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at(2025, 9, 2, 1, 31), cursor=ripple.cursor
    )
    assert requested_runs(again) == set()
