"""Operational reports: ``report_daily`` (one per day) and ``report_weekly`` (one per Monday..Sunday
week) write ``report.md`` and a self-contained ``report.html`` under ``reports/`` (see
``lib/reports/``); the Markdown is also the materialisation's metadata, so the Dagster UI shows
the report itself.

Built by the automation sensor, not by a schedule (``reports_daily_automated`` and
``reports_weekly_automated``, in ``pipelines/defs/automation/conditions.py``): a report is built
once its
rollups are (the daily one after the ``daily_lake`` run of its day, the weekly one after the
Monday rollups), and rebuilt when one of them is re-materialised (late data), so it never shows
numbers older than the rollups'. The condition is the partner bundle's: the same rule for
anything built from rollups.

With ``TELEMETRY_DAGSTER_URL`` set (the ``reports`` resource), each partition a report lists under
"About these numbers" links to the Dagster run that last materialised it, found in this
instance's event log; without it, or for a partition no run of this instance wrote, the partition
is listed without a link rather than with one that leads nowhere."""

from collections.abc import Callable
from datetime import date

import dagster as dg

from pipelines.defs.keys import (
    LEDGER,
    OWNERS,
    QUARANTINE,
    REPORT_DAILY,
    REPORT_WEEKLY,
    REPORTS_GROUP,
    TRAFFIC_DAILY,
    TRAFFIC_PARTS,
)
from pipelines.defs.partitions import daily_partitions, weekly_partitions
from pipelines.defs.resources import (
    DuckDBSettings,
    LakeResource,
    ReportsResource,
    SloResource,
    lake_on_s3,
)
from pipelines.lib.automation.alerts import run_url
from pipelines.lib.reports.build import HTML_FILE, build_report
from pipelines.lib.reports.data import DAILY, TREND_DAYS, WEEKLY, Source

# Named jobs for a report built on purpose (the demo, a backfill from the UI); the automation
# sensor's runs are their twins' (``<job>_automated``, pipelines/defs/automation/conditions.py).
REPORTS_DAILY_JOB = "reports_daily"
REPORTS_WEEKLY_JOB = "reports_weekly"

# What each report reads of its own period; the SLO evaluation also reads traffic_parts (latency
# per surface), the ledger and the quarantine. The daily report's trend also reads the 27 days
# before, without depending on them: a late day re-run there changes one point of the chart, not
# the report's subject.
_DAY_INPUTS = (TRAFFIC_DAILY, TRAFFIC_PARTS, "errors_daily", QUARANTINE, LEDGER)
_DEPS = {
    DAILY: [dg.AssetDep(name) for name in (*_DAY_INPUTS, "traffic_hourly")],
    WEEKLY: [
        dg.AssetDep("traffic_weekly"),
        dg.AssetDep("experiments_weekly"),
        *[
            dg.AssetDep(name, partition_mapping=dg.TimeWindowPartitionMapping())
            for name in _DAY_INPUTS
        ],
    ],
}
_DESCRIPTIONS = {
    DAILY: "The day's operational report, reports/daily/event_date=D/report.md and report.html: "
    "health score (its formula printed), recommendations, SLO status and anomalies, latency "
    f"p50/p95/p99 over the trailing {TREND_DAYS} days and p95 per hour, CTR per bucket with a "
    "95% interval, errors by code, quarantine by reason; numbers as the rollups store them.",
    WEEKLY: "The week's operational report, reports/weekly/week_start=W/report.md and "
    "report.html: health score (the mean of its days'), recommendations, SLO status per day, "
    "flagged anomalies, change against the previous week, latency per day, CTR per bucket with "
    "its delta-method interval, lift and sample-ratio test (experiments_weekly), errors by code, "
    "quarantine by reason.",
}


def run_links(
    instance: dg.DagsterInstance, base_url: str | None
) -> Callable[[Source], str | None] | None:
    """The URL of the run that last materialised a source partition, from ``instance``'s event
    log; None without a base URL (no links at all) or for a partition no run materialised."""
    if base_url is None:
        return None

    def link(source: Source) -> str | None:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(source.asset), asset_partitions=[source.partition]
            ),
            limit=1,
        )
        return run_url(base_url, found.records[0].run_id) if found.records else None

    return link


def build_report_asset(
    kind: str, partitions_def: dg.PartitionsDefinition, on_s3: bool = False
) -> dg.AssetsDefinition:
    @dg.asset(
        name=REPORT_DAILY if kind == DAILY else REPORT_WEEKLY,
        deps=_DEPS[kind],
        partitions_def=partitions_def,
        group_name=REPORTS_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "html", "markdown", *(["s3"] if on_s3 else [])},
        description=_DESCRIPTIONS[kind],
    )
    def report(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        slo: SloResource,
        duckdb: DuckDBSettings,
        reports: ReportsResource,
    ) -> dg.MaterializeResult:
        the_lake = lake.lake()
        result = build_report(
            the_lake,
            kind,
            date.fromisoformat(context.partition_key),
            slo.config(),
            memory_limit=duckdb.memory_limit,
            threads=duckdb.threads,
            run_link=run_links(context.instance, reports.base_url()),
        )
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(result.markdown),
                "health_score": dg.MetadataValue.float(result.health_score),
                "period": f"{result.start}..{result.end}",
                "path": dg.MetadataValue.path(the_lake.url(f"{result.path}/{HTML_FILE}")),
                "seconds": round(result.seconds, 3),
            }
        )

    return report


@dg.definitions
def defs() -> dg.Definitions:
    on_s3 = lake_on_s3()
    assets = [
        build_report_asset(DAILY, daily_partitions(), on_s3),
        build_report_asset(WEEKLY, weekly_partitions(), on_s3),
    ]
    jobs = [
        dg.define_asset_job(
            name,
            selection=dg.AssetSelection.assets(asset),
            description=f"Build the operational report of one {period}.",
        )
        for name, asset, period in (
            (REPORTS_DAILY_JOB, REPORT_DAILY, "day"),
            (REPORTS_WEEKLY_JOB, REPORT_WEEKLY, "week"),
        )
    ]
    return dg.Definitions(assets=dg.with_source_code_references(assets), jobs=jobs)
