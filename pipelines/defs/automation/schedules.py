"""The clock-driven work: one partitioned-job schedule per period (day, week, month).

Schedules rather than declarative conditions for these, because the on-call question is "what
runs at 02:00, and for which day?": a cron and a partition key answer it. The one automatic
rebuild that is not clock-driven (a week or month whose days changed) is a declarative condition
on the rollup jobs' automated twins, in ``pipelines/defs/automation/conditions.py``.

Dagster builds each schedule from its job's partitions (``build_schedule_from_partitioned_job``):
a tick requests the last complete partition (yesterday, last Monday..Sunday week, last month),
run-keyed by the partition key, and skips a tick with no complete partition yet (before the first
partition date, which the partitions read when definitions load).
"""

import dagster as dg

from pipelines.defs.job_checks import without_watched_checks
from pipelines.defs.keys import CONTRACTS, INGEST_GROUP
from pipelines.defs.rollups.assets import rollup_job
from pipelines.lib.lake import calendar
from pipelines.lib.rollups.run import DAY, MODELS, MONTH, WEEK

DAILY_JOB = "daily_lake"
# daily_lake after its ingest: for a day whose ingest (and its neighbours') already ran, as in the
# demo, which ingests every day first so that each day's contracts find D-1 and D+1.
DAY_BUILD_JOB = "daily_build"


def daily_job():
    return dg.define_asset_job(
        DAILY_JOB,
        selection=without_watched_checks(
            dg.AssetSelection.groups(INGEST_GROUP)
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


def _hour(cron: str) -> int:
    """The hour of one of ``calendar``'s crons (``0 H ...``), which stay the one place that says
    when each period runs: Dagster derives the rest of the cron from the job's partitions."""
    minute, hour, *_ = cron.split()
    if minute != "0" or not hour.isdigit():
        raise ValueError(f"{cron!r}: a partition schedule runs on the hour (0 H ...)")
    return int(hour)


def partition_schedule(name: str, job, cron: str, description: str):
    """``job``'s schedule at ``cron``'s hour in the job's partition time zone (UTC), on by
    default. Returns Dagster's unresolved schedule for an asset job: its cron is only known once
    the job's assets (and so its partitions) are resolved, which ``tests/`` check."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=name,
        hour_of_day=_hour(cron),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )


@dg.definitions
def defs() -> dg.Definitions:
    job = daily_job()
    return dg.Definitions(
        jobs=[job, day_build_job()],
        schedules=[
            partition_schedule(
                "daily_lake_schedule",
                job,
                calendar.DAILY_CRON,
                "Every day at 02:00 UTC: ingest, contracts and daily rollups of yesterday.",
            ),
            partition_schedule(
                "weekly_rollups_schedule",
                rollup_job(WEEK),
                calendar.WEEKLY_CRON,
                "Every Monday at 04:00 UTC: the weekly rollups of the week that just ended.",
            ),
            partition_schedule(
                "monthly_rollups_schedule",
                rollup_job(MONTH),
                calendar.MONTHLY_CRON,
                "On the 1st at 05:00 UTC: the monthly rollups of the month that just ended.",
            ),
        ],
    )
