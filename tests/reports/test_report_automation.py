"""How the reports get built: no schedule, the automation sensor's named jobs. A day's report is
requested once that day's rollups exist, not again while nothing changes (nor while its run is
going or after it failed), and again when a rollup it reads is re-materialised (late data); the
week's report once the week's rollups exist."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from pipelines.defs.automation.conditions import AUTOMATED, automated_jobs
from pipelines.defs.keys import LEDGER, QUARANTINE, REPORT_DAILY, REPORT_WEEKLY
from pipelines.defs.partitions import daily_partitions, weekly_partitions
from pipelines.defs.reports.assets import REPORTS_DAILY_JOB, REPORTS_WEEKLY_JOB, build_report_asset
from pipelines.defs.resources import DuckDBSettings, LakeResource, ReportsResource, SloResource
from pipelines.lib.reports.data import DAILY, WEEKLY
from tests.automation.test_ripple import requested_runs

MONDAY = date(2025, 6, 2)
SUNDAY = MONDAY + timedelta(days=6)
DAILY_INPUTS = (
    "traffic_daily",
    "traffic_parts",
    "traffic_hourly",
    "errors_daily",
    QUARANTINE,
    LEDGER,
)
# The report each automated job builds.
JOBS = {
    f"{REPORTS_DAILY_JOB}{AUTOMATED}": REPORT_DAILY,
    f"{REPORTS_WEEKLY_JOB}{AUTOMATED}": REPORT_WEEKLY,
}
# Monday after the week, after the daily run of Sunday (02:00) and the weekly rollups (04:00).
AFTER_THE_WEEK = datetime(2025, 6, 9, 4, 30, tzinfo=UTC)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def defs() -> dg.Definitions:
    # The reports' inputs as plain partitioned specs: the conditions read only the event log.
    inputs = [dg.AssetSpec(name, partitions_def=daily_partitions()) for name in DAILY_INPUTS]
    inputs += [
        dg.AssetSpec(name, partitions_def=weekly_partitions())
        for name in ("traffic_weekly", "experiments_weekly")
    ]
    reports = [
        build_report_asset(DAILY, daily_partitions()),
        build_report_asset(WEEKLY, weekly_partitions()),
    ]
    # Resources are never built: the conditions are evaluated, nothing runs.
    resources = {
        "lake": LakeResource(),
        "slo": SloResource(),
        "duckdb": DuckDBSettings(),
        "reports": ReportsResource(),
    }
    jobs = [job for job in automated_jobs() if job.name in JOBS]
    return dg.Definitions(assets=[*inputs, *reports], jobs=jobs, resources=resources)


def _materialised(instance: dg.DagsterInstance, name: str, day: date) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=name, partition=day.isoformat())
    )


def _requested(defs, instance, at: datetime, cursor=None):
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at, cursor=cursor
    )
    requested = {(JOBS[job], partition) for job, partition in requested_runs(result)}
    return requested, result.cursor


def test_reports_follow_their_rollups(defs, instance):
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK)
    assert requested == set()  # nothing built yet: nothing to report on

    for name in DAILY_INPUTS:
        _materialised(instance, name, SUNDAY)
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == {(REPORT_DAILY, SUNDAY.isoformat())}
    # Requested once: not again while its run goes, nor every minute after it failed.
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == set()

    _materialised(instance, REPORT_DAILY, SUNDAY)
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == set()

    # A late file re-ran Sunday: its report is rebuilt from the new rollups.
    _materialised(instance, "traffic_daily", SUNDAY)
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == {(REPORT_DAILY, SUNDAY.isoformat())}
    _materialised(instance, REPORT_DAILY, SUNDAY)

    # The week: once every day it reads and the weekly rollups exist.
    for day in (MONDAY + timedelta(days=n) for n in range(6)):
        for name in DAILY_INPUTS:
            _materialised(instance, name, day)
    _materialised(instance, "traffic_weekly", MONDAY)
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == set()  # experiments_weekly is not built yet
    _materialised(instance, "experiments_weekly", MONDAY)
    requested, cursor = _requested(defs, instance, AFTER_THE_WEEK, cursor)
    assert requested == {(REPORT_WEEKLY, MONDAY.isoformat())}
