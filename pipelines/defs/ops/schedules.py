"""The clock-driven work: one partitioned-job schedule per period (day, week, month).

Schedules rather than declarative conditions for these, because the on-call question is "what
runs at 02:00, and for which day?": a cron and a partition key answer it. The one automatic
rebuild that is not clock-driven (a week or month whose days changed) is a declarative condition
on the rollup jobs' automated twins, in ``pipelines/defs/ops/automation.py``.
"""

import os
from collections.abc import Callable
from datetime import date, datetime

import dagster as dg

from pipelines.defs.contracts.assets import CONTRACTS
from pipelines.defs.ops.job_checks import without_watched_checks
from pipelines.lib.ops import calendar
from pipelines.lib.rollups.run import DAY, MODELS
from pipelines.lib.settings import first_partition_date

DAILY_JOB = "daily_lake"
# daily_lake after its ingest: for a day whose ingest (and its neighbours') already ran, as in the
# demo, which ingests every day first so that each day's contracts find D-1 and D+1.
DAY_BUILD_JOB = "daily_build"


def daily_job():
    return dg.define_asset_job(
        DAILY_JOB,
        selection=without_watched_checks(
            dg.AssetSelection.groups("ingest")
            | dg.AssetSelection.assets(CONTRACTS, *[m.name for m in MODELS if m.grain == DAY])
        ),
        description="One day end to end: ingest, contracts (whose blocking checks stop a bad "
        "day) and the daily rollups. Run by the daily schedule for yesterday and by the landing "
        "sensor when late files land.",
    )


def day_build_job():
    return dg.define_asset_job(
        DAY_BUILD_JOB,
        selection=without_watched_checks(
            dg.AssetSelection.assets(CONTRACTS, *[m.name for m in MODELS if m.grain == DAY])
        ),
        description="One day's contracts (whose blocking checks stop a bad day) and daily "
        "rollups, once the day and its neighbours are ingested: daily_lake without its ingest.",
    )


def partition_schedule(
    name: str,
    cron: str,
    job_name: str,
    target: Callable[[datetime], date],
    description: str,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job_name=job_name,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        period = target(context.scheduled_execution_time)
        first = first_partition_date(os.environ.get("TELEMETRY_FIRST_DATE"))
        if period < first:
            return dg.SkipReason(f"{period} is before the first partition date {first}")
        key = period.isoformat()
        return dg.RunRequest(run_key=f"{name}:{key}", partition_key=key)

    return _schedule


@dg.definitions
def defs() -> dg.Definitions:
    job = daily_job()
    return dg.Definitions(
        jobs=[job, day_build_job()],
        schedules=[
            partition_schedule(
                "daily_lake_schedule",
                calendar.DAILY_CRON,
                DAILY_JOB,
                calendar.previous_day,
                "Every day at 02:00 UTC: ingest, contracts and daily rollups of yesterday.",
            ),
            partition_schedule(
                "weekly_rollups_schedule",
                calendar.WEEKLY_CRON,
                "rollups_weekly",
                calendar.previous_week_start,
                "Every Monday at 04:00 UTC: the weekly rollups of the week that just ended.",
            ),
            partition_schedule(
                "monthly_rollups_schedule",
                calendar.MONTHLY_CRON,
                "rollups_monthly",
                calendar.previous_month_start,
                "On the 1st at 05:00 UTC: the monthly rollups of the month that just ended.",
            ),
        ],
    )
