"""The retention job: delete expired partitions (trim error partitions to their critical rows),
dry-run by default, with a Parquet report under ``ops/retention/``; and the daily schedule that
runs it for real. The rules live in ``pipelines/lib/maintenance/retention.py``; the windows are the
``retention`` resource (``pipelines/defs/resources.py``). See docs/contracts/pii_retention.md."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from pipelines.defs.resources import LakeResource, RetentionResource, first_partition
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.maintenance.retention import DELETE, TRIM, run_retention

OP = "apply_retention"
# How far an as_of may lie ahead of this process's clock: the scheduler's host may run slightly
# ahead of the run worker's. Anything more would measure the windows from the future.
_CLOCK_SKEW = timedelta(minutes=1)


class RetentionConfig(dg.Config):
    dry_run: bool = Field(
        True, description="Plan and write the report, delete nothing. The schedule sets False."
    )
    as_of: str | None = Field(
        None,
        description="The instant the windows are measured from (ISO 8601 with a zone); default: "
        "when the run starts. The schedule sets its tick time, so a re-executed run does the same.",
    )


def _as_of(value: str | None) -> datetime:
    clock = datetime.now(UTC)
    if not value:
        return clock
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"as_of={value!r} is not an ISO 8601 instant") from exc
    if at.tzinfo is None:
        raise ConfigError(f"as_of={value!r} has no time zone: write it in UTC, e.g. +00:00")
    if at > clock + _CLOCK_SKEW:
        raise ConfigError(
            f"as_of={value!r} is in the future: windows measured from it would delete partitions "
            "that are still inside them; leave as_of empty to use the current time"
        )
    return at


def _by_table(summary: dict[str, dict[str, int]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "table": table,
                    "deleted": n[DELETE],
                    "trimmed": n[TRIM],
                    "bytes_removed": n["bytes_removed"],
                }
            )
            for table, n in summary.items()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("table", "string"),
                dg.TableColumn("deleted", "int", description="partitions deleted"),
                dg.TableColumn("trimmed", "int", description="error partitions trimmed"),
                dg.TableColumn("bytes_removed", "int"),
            ]
        ),
    )


@dg.op(
    name=OP,
    # Two retention runs at once would race on the same folders; configure this pool's limit to 1.
    pool="retention",
    description="Delete the lake's expired partitions (trim error partitions to their critical "
    "rows) or, in a dry run, only list them; reports to ops/retention/run_date=D/.",
)
def apply_retention(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    lake: LakeResource,
    retention: RetentionResource,
) -> dg.Output[dict]:
    store = lake.lake()
    result = run_retention(
        store,
        retention.windows(),
        now=_as_of(config.as_of),
        first_partition=first_partition(),
        run_id=context.run_id,
        dry_run=config.dry_run,
        log=context.log.info,
    )
    if result.plan.unread_landing:
        context.log.warning(
            f"{len(result.plan.unread_landing)} landing dates are older than the first partition "
            f"(TELEMETRY_FIRST_DATE) and were never ingested; retention keeps them: "
            f"{', '.join(d.isoformat() for d in result.plan.unread_landing)}"
        )
    summary = result.by_table()
    return dg.Output(
        summary,
        metadata={
            "dry_run": config.dry_run,
            "as_of": dg.MetadataValue.timestamp(result.plan.now),
            "report": dg.MetadataValue.path(store.url(result.report_path)),
            "partitions_deleted": sum(n[DELETE] for n in summary.values()),
            "partitions_trimmed": sum(n[TRIM] for n in summary.values()),
            "bytes_removed": sum(n["bytes_removed"] for n in summary.values()),
            "by_table": _by_table(summary),
            "unread_landing_dates": len(result.plan.unread_landing),
        },
    )


@dg.job(
    name="retention",
    description="Retention: delete expired partitions, whole, per the `retention` resource's "
    "windows; dry run by default (set ops.apply_retention.config.dry_run: false to delete).",
)
def retention_job() -> None:
    apply_retention()


@dg.schedule(
    name="retention_daily",
    job=retention_job,
    # Every day at 03:00 UTC, after the 02:00 daily ingest of yesterday.
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs retention for real (dry_run false) once a day.",
)
def retention_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    at = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(
        run_key=f"retention-{at:%Y-%m-%d}",
        run_config=dg.RunConfig(ops={OP: RetentionConfig(dry_run=False, as_of=at.isoformat())}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[retention_job],
        schedules=[retention_daily],
    )
