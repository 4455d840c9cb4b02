"""The landing sensor: new files in ``landing/`` re-run the partitions that read them."""

from collections.abc import Callable
from datetime import UTC, date, datetime

import dagster as dg

from pipelines.defs.automation.schedules import DAILY_JOB
from pipelines.defs.resources import LakeResource, first_partition
from pipelines.lib.automation.landing_watch import decide, list_landing

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_landing_sensor(clock: Callable[[], datetime] = _utc_now) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job_name=DAILY_JOB,
        minimum_interval_seconds=120,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lists landing/ against its cursor. For files new on arrival date dt it "
        "re-runs the partitions that read dt (dt-2 .. dt+1) that are materialised and have not "
        "read them yet, or are due (after 02:00 UTC the next day); a partition with a run "
        "queued or in progress waits for a later tick.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        def busy(day: date) -> bool:
            runs = context.instance.get_run_records(
                filters=dg.RunsFilter(
                    tags={"dagster/partition": day.isoformat()}, statuses=IN_FLIGHT
                ),
                limit=1,
            )
            return bool(runs)

        the_lake = lake.lake()
        decision = decide(
            the_lake,
            list_landing(the_lake),
            context.cursor,
            clock(),
            first_partition(),
            busy,
        )
        for day, why in decision.skipped.items():
            context.log.info(f"partition {day} not requested: {why}")
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                partition_key=run.day.isoformat(),
                tags={
                    "telemetry/trigger": "landing_sensor",
                    "telemetry/new_files": str(len(run.new_files)),
                    "telemetry/files_covered": str(run.files_covered),
                },
            )
            for run in decision.runs
        ]
        for run in decision.runs:
            context.log.info(
                f"partition {run.day}: {len(run.new_files)} new landing file(s) "
                f"({', '.join(run.new_files[:5])}{' ...' if len(run.new_files) > 5 else ''})"
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=decision.cursor,
            skip_reason=None if requests else "no partition needs a run for new landing files",
        )

    return landing_sensor


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[build_landing_sensor()])
