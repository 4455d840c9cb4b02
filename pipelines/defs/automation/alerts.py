"""Webhook alerts: a failed gate, an SLO violation or a failed run sends one JSON message.

Both sensors react to finished runs, each run once (Dagster keeps their cursor over the run-status
events): ``alerts_failed_runs`` on a failed run, ``alerts_succeeded_runs`` on a successful one.
Each reads the run's check evaluations from the event log and sends what
``pipelines.lib.automation.alerts.alerts_for_run`` decides. Deciding per run, in one place, is what
keeps a
gate that failed its run to one message: the run-failure message is dropped when all the run
failed on is that gate. The event log's global reads (``get_event_records``) are deprecated in
Dagster 1.13, and on SQLite storage refuse a plain cursor for check events; the run-status cursor
has neither problem.

A message that cannot be delivered (after one retry) is logged with its body and fails the tick,
which the UI shows on the sensor; Dagster still moves the cursor past that run (a run-status
sensor does not repeat side effects), so the logged body is what to replay. Without
TELEMETRY_ALERT_WEBHOOK_URL the sensors skip each run with a message saying so.
"""

from datetime import UTC, datetime

import dagster as dg

from pipelines.defs.resources import AlertsResource
from pipelines.lib.automation.alerts import (
    WEBHOOK_URL_VARIABLE,
    CheckOutcome,
    Run,
    RunFailure,
    alerts_for_run,
)

FAILED_RUNS_SENSOR = "alerts_failed_runs"
SUCCEEDED_RUNS_SENSOR = "alerts_succeeded_runs"

# The error Dagster raises in a step whose blocking check failed with ERROR severity (not public
# API, so matched by name): that step failure is the gate's own message.
BLOCKING_CHECK_ERROR = "DagsterAssetCheckFailedError"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Set on a failed run when the instance's run retries will re-execute it.
WILL_RETRY_TAG = "dagster/will_retry"
_NUMBERS = (dg.IntMetadataValue, dg.FloatMetadataValue, dg.BoolMetadataValue)


def run_partition(tags: dict[str, str]) -> str | None:
    """The run's partition key, or ``first...last`` for a single-run backfill of a range."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START_TAG in tags:
        return f"{tags[RANGE_START_TAG]}...{tags.get(RANGE_END_TAG, '')}"
    return None


def _check_outcomes(instance: dg.DagsterInstance, run_id: str) -> list[CheckOutcome]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    outcomes = []
    for entry in entries:
        evaluation = entry.dagster_event.event_specific_data
        outcomes.append(
            CheckOutcome(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                blocking=bool(evaluation.blocking),
                partition=evaluation.partition,
                occurred_at=datetime.fromtimestamp(entry.timestamp, UTC),
                description=evaluation.description,
                numbers={
                    name: value.value
                    for name, value in evaluation.metadata.items()
                    if isinstance(value, _NUMBERS)
                },
            )
        )
    return outcomes


def _first_line(error) -> str:
    """``error`` is the step failure's SerializableErrorInfo. Its innermost cause is the user's
    exception; Dagster's wrappers around it only say in which op it happened."""
    while error.cause is not None:
        error = error.cause
    lines = error.message.strip().splitlines() or [error.cls_name]
    head, _, text = lines[0].partition(": ")
    return f"{head.rsplit('.', 1)[-1]}: {text}" if text else head


def _run_failure(context: dg.RunFailureSensorContext) -> RunFailure:
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = (
        datetime.fromtimestamp(record.end_time, UTC) if record.end_time else record.update_timestamp
    )
    return RunFailure(
        occurred_at=ended,
        message=context.failure_event.message or "the run failed",
        other_step_errors={
            event.step_key: _first_line(event.event_specific_data.error)
            for event in context.get_step_failure_events()
            if event.event_specific_data.error.cls_name != BLOCKING_CHECK_ERROR
        },
        will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
    )


def _alert_run(
    context: dg.RunStatusSensorContext, alerts: AlertsResource, failure: RunFailure | None
) -> dg.SkipReason | None:
    run = context.dagster_run
    if alerts.webhook() is None:
        return dg.SkipReason(
            f"{WEBHOOK_URL_VARIABLE} is not set, so alerts are off: nothing sent for run "
            f"{run.run_id} ({run.job_name})"
        )
    facts = Run(run.run_id, run.job_name, run_partition(run.tags), alerts.run_url(run.run_id))
    outcomes = _check_outcomes(context.instance, run.run_id)
    alerts.send(alerts_for_run(facts, outcomes, failure), context.log)
    return None


# Every run on the instance: without monitor_all_code_locations a run started outside this code
# location's launcher (`dagster asset materialize`, in-process) would not match.
@dg.run_failure_sensor(
    name=FAILED_RUNS_SENSOR,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On each failed run: one webhook message per failed blocking check (ERROR) or "
    "SLO check, and one for the run unless all it failed on is those gates or Dagster will "
    "retry it.",
)
def alerts_failed_runs(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    return _alert_run(context, alerts, _run_failure(context))


@dg.run_status_sensor(
    name=SUCCEEDED_RUNS_SENSOR,
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On each successful run: one webhook message per failed SLO check (they warn, "
    "so the run went on).",
)
def alerts_succeeded_runs(context: dg.RunStatusSensorContext, alerts: AlertsResource):
    return _alert_run(context, alerts, None)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[alerts_failed_runs, alerts_succeeded_runs])
