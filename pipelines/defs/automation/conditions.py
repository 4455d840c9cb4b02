"""What runs by itself when the lake changes, and the sensor that starts it: the rebuild of a week
or month whose days changed, the reports and the partner bundle once their rollups are ready (and
again when they change), and the catalog when its views change. Each is a condition on a named
job, ``<job>_automated``, so every run the sensor launches is listed under a job of its own rather
than Dagster's hidden ``__ASSET_JOB`` (issue 21): conditions on assets would go through that one.

Twins rather than conditions on ``rollups_weekly``, ``reports_daily``, ``refresh_catalog``...:
Dagster 1.13 refuses to ``execute_in_process`` a partitioned job that has an automation condition
(``as_ephemeral_job`` passes the job's own partitioned config as ``config``, which
``JobDefinition.__init__`` rejects beside a condition), and the demo and the tests run those jobs
in process. Each twin selects exactly its sibling's assets and checks.

A job's condition is evaluated on the job's root assets, and Dagster records the request under
the job, not under those assets: an asset condition's ``since_last_handled()`` wrapped as is would
never see the job's run requested, and would request the same partition again on every tick after
a failed run. ``_on_job`` keeps the asset rule (requested once per change; a failed run is not
retried until something changes again) by counting the job's own request as handled.
"""

import warnings

import dagster as dg

from pipelines.defs.catalog.assets import CATALOG_JOB
from pipelines.defs.keys import CATALOG, PARTNER_BUNDLE, REPORT_DAILY, REPORT_WEEKLY
from pipelines.defs.reports.assets import REPORTS_DAILY_JOB, REPORTS_WEEKLY_JOB
from pipelines.defs.rollups.assets import ROLLUP_JOBS, rollups_selection
from pipelines.lib.rollups.run import MONTH, WEEK

AC = dg.AutomationCondition
AUTOMATED = "_automated"
CATALOG_CRON = "30 6 * * *"


def _preview():
    # Job conditions are a Dagster preview, chosen knowingly (issue 21): the warning on each call
    # would repeat it on every load of the definitions.
    return warnings.catch_warnings(action="ignore", category=dg.PreviewWarning)


def _on_job(state: dg.AutomationCondition, change: dg.AutomationCondition, label: str):
    """True for a job partition whose root assets are all in ``state`` and one of which saw
    ``change`` since the job last handled that partition: its own request, a root asset
    materialised (by this job or any other), or the first evaluation, the asset rule's "handled"
    seen from the job."""
    with _preview():
        handled = (
            AC.newly_requested()
            | AC.any_job_root_assets_match(AC.newly_updated())
            | AC.initial_evaluation()
        ).with_label("handled")
        return (
            AC.all_job_root_assets_match(state)
            & AC.any_job_root_assets_match(change).since(handled)
        ).with_label(label)


_SETTLED = ~AC.any_deps_in_progress() & ~AC.in_progress()

# A week or month already built is rebuilt when one of its days is re-materialised (a late file
# re-ran the day), once that day's run is over; never built here for the first time (the
# schedules do that), and untouched days are only read, not rebuilt.
REBUILD_WHEN_DAYS_CHANGE = _on_job(
    ~AC.missing() & _SETTLED, AC.any_deps_updated(), "rebuild when one of its days changed"
)

# Built once every rollup it reads exists (for the partner bundle, the last week of a month ends
# in the next one, so that is up to a week after the month; the latest period only, as on_missing
# does, so deploying this does not backfill every past period), and rebuilt when one of them is
# re-materialised (a late day rippled into its week and month), once that run is over: readers
# always find the report or bundle of the rollups as they stand.
BUILD_WHEN_ROLLUPS_READY = _on_job(
    AC.in_latest_time_window() & AC.missing() & ~AC.any_deps_missing() & _SETTLED,
    AC.missing().newly_true() | AC.any_deps_updated(),
    "build when its rollups are ready",
) | _on_job(
    ~AC.missing() & _SETTLED, AC.any_deps_updated(), "rebuild when one of its rollups changed"
)

# The catalog's views change exactly when its code version does (event schemas, MODELS,
# lib/catalog/tiers.py); daily too, because a table's first file (say the first monthly rollup)
# needs a
# rebuild to show. on_missing | code_version_changed | on_cron, seen from the job.
with _preview():
    REFRESH_WHEN_VIEWS_CHANGE = (
        _on_job(
            AC.in_latest_time_window() & ~AC.any_deps_missing(),
            AC.missing().newly_true(),
            "on_missing",
        )
        | AC.any_job_root_assets_match(AC.code_version_changed()).with_label("code_version_changed")
        | _on_job(
            AC.in_latest_time_window() & AC.all_deps_updated_since_cron(CATALOG_CRON),
            AC.cron_tick_passed(CATALOG_CRON),
            f"on_cron({CATALOG_CRON})",
        )
    )


def automated_jobs() -> list:
    """The jobs the automation sensor launches, each with its condition: a twin of each named job
    that builds the same thing on purpose, and the partner bundle's, which has no other job."""
    ready = "once its rollups are ready, and again when they change"
    jobs = [
        (ROLLUP_JOBS[WEEK], rollups_selection(WEEK), REBUILD_WHEN_DAYS_CHANGE, "a built week "
         "whose days were re-materialised (late data), once their run is over"),
        (ROLLUP_JOBS[MONTH], rollups_selection(MONTH), REBUILD_WHEN_DAYS_CHANGE, "a built month "
         "whose days were re-materialised (late data), once their run is over"),
        (REPORTS_DAILY_JOB, dg.AssetSelection.assets(REPORT_DAILY), BUILD_WHEN_ROLLUPS_READY,
         f"a day's report, {ready}"),
        (REPORTS_WEEKLY_JOB, dg.AssetSelection.assets(REPORT_WEEKLY), BUILD_WHEN_ROLLUPS_READY,
         f"a week's report, {ready}"),
        (PARTNER_BUNDLE, dg.AssetSelection.assets(PARTNER_BUNDLE), BUILD_WHEN_ROLLUPS_READY,
         f"a month's partner bundle, {ready}"),
        (CATALOG_JOB, dg.AssetSelection.assets(CATALOG), REFRESH_WHEN_VIEWS_CHANGE, "the "
         "catalogs, when missing, when their views change, and daily at 06:30 UTC"),
    ]  # fmt: skip
    with _preview():
        return [
            dg.define_asset_job(
                f"{name}{AUTOMATED}",
                selection=selection,
                automation_condition=condition,
                description=f"Launched by the automation sensor: {what}.",
            )
            for name, selection, condition, what in jobs
        ]


@dg.definitions
def defs() -> dg.Definitions:
    jobs = automated_jobs()
    return dg.Definitions(
        jobs=jobs,
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "automation",
                target=dg.AssetSelection.all(),
                # An asset selection cannot name a job: the sensor claims its jobs through this
                # (hidden) argument, else Dagster adds its default_automation_condition_sensor
                # for them.
                asset_job_keys={dg.AssetJobKey(job.name) for job in jobs},
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=60,
                description="Launches the *_automated jobs: rebuilds a week or month whose days "
                "were re-materialised (late data), builds reports and partner bundles once "
                "their rollups are ready, and the catalog when its views change.",
            )
        ],
    )
