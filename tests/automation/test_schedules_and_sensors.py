"""Schedules and the landing sensor evaluated with Dagster's test contexts at fixed instants:
which runs they request, for which partition keys and with which run keys."""

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.defs.automation.schedules import DAILY_JOB
from pipelines.defs.automation.sensors import build_landing_sensor
from pipelines.defs.resources import LakeResource
from pipelines.lib.lake import calendar
from tests.conftest import event, line

D = date(2025, 6, 2)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    return defs.get_repository_def()


@pytest.mark.parametrize(
    ("name", "cron", "job", "tick", "key"),
    [
        ("daily_lake_schedule", "0 2 * * *", DAILY_JOB, at(2025, 6, 3, 2), "2025-06-02"),
        ("weekly_rollups_schedule", "0 4 * * 1", "rollups_weekly", at(2025, 6, 9, 4), "2025-06-02"),
        (
            "monthly_rollups_schedule",
            "0 5 1 * *",
            "rollups_monthly",
            at(2025, 7, 1, 5),
            "2025-06-01",
        ),
    ],
)
def test_each_schedule_requests_the_period_that_just_ended(repo, name, cron, job, tick, key):
    schedule = repo.get_schedule_def(name)
    assert (schedule.cron_schedule, schedule.job_name, schedule.execution_timezone) == (
        cron,
        job,
        "UTC",
    )
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    request = schedule(dg.build_schedule_context(scheduled_execution_time=tick))
    # Dagster's partitioned schedule keys each run by its partition (run keys are per schedule).
    assert (request.partition_key, request.run_key) == (key, key)


def test_a_schedule_tick_before_the_first_partition_date_is_skipped(repo):
    # The first partition date (TELEMETRY_FIRST_DATE, default 2025-01-01) is read when definitions
    # load: the tick that would build 2024-12-31 finds no partition to request.
    schedule = repo.get_schedule_def("daily_lake_schedule")
    result = schedule(dg.build_schedule_context(scheduled_execution_time=at(2025, 1, 1, 2)))
    assert isinstance(result, dg.SkipReason)
    assert "has no partitions" in result.skip_message


def test_the_daily_job_builds_ingest_contracts_and_daily_rollups(repo):
    job = repo.get_job(DAILY_JOB)
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {
        "request", "ranking", "impression", "click", "error", "quarantine", "ledger",
        "contracts", "traffic_daily", "traffic_parts", "traffic_hourly", "errors_daily",
    }  # fmt: skip
    assert job.partitions_def.get_first_partition_key() == "2025-01-01"


def _sensor_tick(lake, instance, now, cursor=None):
    sensor = build_landing_sensor(clock=lambda: now)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource(root=str(lake.root))}
    )
    return sensor(context)


def test_the_landing_sensor_requests_a_late_day_once(lake, monkeypatch):
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "2025-06-02")
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    lake.ingest(D)
    with dg.instance_for_test() as instance:
        first = _sensor_tick(lake, instance, at(2025, 6, 4, 0, 30))
        assert [r.partition_key for r in first.run_requests] == []
        lake.land(date(2025, 6, 4), "part-00000.jsonl", [line(event("click", D))])
        late = _sensor_tick(lake, instance, at(2025, 6, 4, 1), first.cursor)
        [request] = late.run_requests
        assert request.partition_key == "2025-06-02"
        assert request.run_key.startswith("landing:2025-06-02:")
        assert request.tags["telemetry/new_files"] == "1"
        # The same tick again: nothing new. A restart without a cursor: the same run key, which
        # Dagster does not launch twice.
        assert _sensor_tick(lake, instance, at(2025, 6, 4, 1, 2), late.cursor).run_requests == []
        restart = _sensor_tick(lake, instance, at(2025, 6, 4, 1, 4))
        assert [r.run_key for r in restart.run_requests] == [request.run_key]


def test_the_landing_sensor_waits_while_a_run_of_the_partition_is_in_progress(lake, monkeypatch):
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "2025-06-02")
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    lake.ingest(D)

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def placeholder():
        noop()

    with dg.instance_for_test() as instance:
        seen = _sensor_tick(lake, instance, at(2025, 6, 4, 0, 30)).cursor
        lake.land(date(2025, 6, 4), "part-00000.jsonl", [line(event("click", D))])
        running = instance.create_run_for_job(
            placeholder,
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "2025-06-02"},
        )
        waiting = _sensor_tick(lake, instance, at(2025, 6, 4, 1), seen)
        assert waiting.run_requests == []
        instance.report_run_failed(running)
        later = _sensor_tick(lake, instance, at(2025, 6, 4, 1, 2), waiting.cursor)
        assert [r.partition_key for r in later.run_requests] == ["2025-06-02"]


def test_the_sensor_and_schedules_run_by_default(repo):
    for name in ("landing_sensor", "automation", "freshness_checks_sensor"):
        assert repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert repo.get_sensor_def("landing_sensor").job_name == DAILY_JOB
    assert repo.get_schedule_def("daily_lake_schedule").cron_schedule == calendar.DAILY_CRON
