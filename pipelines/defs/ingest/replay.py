"""The ``replay_quarantine`` job: after a schema is published, the quarantined lines it makes
valid move into events/ (``pipelines/lib/ingest/replay.py`` says how, and which lines cannot).

An op job, like ``erase_users``: it re-ingests days that other jobs build, through the same
``ingest_partition`` as the ingest asset, and records each day it rebuilt as an
``AssetMaterialization`` of the seven ingest assets, plus the day's ``ledger_balances``
evaluation. So Dagster shows the days' contracts and rollups as stale, and the weekly and monthly
rollups' automation condition rebuilds them. A day whose ledger does not balance fails the run.
Days where nothing would change are left untouched: a second run rewrites nothing.
"""

from datetime import date

import dagster as dg
from pydantic import Field

from pipelines.defs.ingest.assets import ingest_metadata
from pipelines.defs.ingest.checks import LEDGER_BALANCES
from pipelines.defs.keys import LEDGER
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import ingest_partition
from pipelines.lib.ingest.replay import REPLAYABLE_REASONS, SAMPLE_SIZE, DayPlan, plan_replay
from pipelines.lib.lake.errors import ConfigError

REPLAY_JOB = "replay_quarantine"
REPLAY_OP = "replay_quarantined_lines"


class ReplayConfig(dg.Config):
    event_dates: list[str] = Field(
        default_factory=list,
        description="Days (YYYY-MM-DD) whose quarantine to replay; empty: every day that has one.",
    )


def _days(values: list[str]) -> list[date] | None:
    try:
        return sorted({date.fromisoformat(v) for v in values}) or None
    except ValueError as exc:
        raise ConfigError(
            f"ops.{REPLAY_OP}.config.event_dates: {values!r} must be dates YYYY-MM-DD ({exc})"
        ) from exc


def _summary(plans: list[DayPlan], replayed: list[date]) -> dict:
    not_replayable = [row for p in plans for row in p.not_replayable]
    return {
        "days_with_candidates": len(plans),
        "days_replayed": [d.isoformat() for d in replayed],
        "candidate_lines": sum(p.candidates for p in plans),
        "lines_now_stored": sum(p.now_stored for p in plans if p.replay),
        "lines_quarantined_for_another_reason": sum(p.reason_changed for p in plans if p.replay),
        "lines_not_replayable": sum(p.candidates for p in plans if p.blocked),
        "days_not_replayable": dg.MetadataValue.json(
            {p.day.isoformat(): p.blocked for p in plans if p.blocked}
        ),
        "sample_not_replayable": dg.MetadataValue.json(not_replayable[:SAMPLE_SIZE]),
    }


@dg.op(
    name=REPLAY_OP,
    pool="ingest",
    description="Read the quarantined lines whose reason a schema decides "
    f"({', '.join(REPLAYABLE_REASONS)}) again from landing, route them with the schemas as "
    "they are now, and re-ingest each day where any would end elsewhere; report the lines "
    "landing no longer holds.",
)
def replay_op(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    lake: LakeResource,
    pii: PiiResource,
    duckdb: DuckDBSettings,
) -> None:
    days = _days(config.event_dates)
    the_lake, settings = lake.lake(), duckdb.ingest_settings()
    plans = plan_replay(the_lake, days, settings)
    replayed, unbalanced = [], []
    for plan in plans:
        if plan.blocked:
            context.log.warning(
                f"{plan.day}: {plan.candidates} line(s) not replayable: {plan.blocked}"
            )
            continue
        if not plan.replay:
            context.log.info(f"{plan.day}: {plan.candidates} candidate line(s), none would change")
            continue
        context.log.info(
            f"{plan.day}: re-ingesting: {plan.now_stored} line(s) now stored, "
            f"{plan.reason_changed} quarantined for another reason"
        )
        # The same lease as the ingest asset: a replay is an ingest of the day, and its publish
        # (and the roll-forward of an interrupted one) must have the day to itself.
        with lake.partition_lease(
            the_lake, "ingest", plan.day.isoformat(), context.run.run_id, context.log.info
        ) as lease:
            result = ingest_partition(
                the_lake,
                plan.day,
                pii.keyring(),
                settings,
                log=context.log.info,
                still_held=lease.verify,
            )
        partition = plan.day.isoformat()
        for asset_key, metadata in ingest_metadata(result).items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key,
                    partition=partition,
                    metadata={**metadata, "replayed_lines": plan.now_stored},
                )
            )
        audit = audit_ledger(the_lake, plan.day)
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(LEDGER),
                check_name=LEDGER_BALANCES,
                passed=audit.passed,
                metadata=audit.metadata(),
                partition=partition,
            )
        )
        replayed.append(plan.day)
        if not audit.passed:
            unbalanced.append(partition)
    context.add_output_metadata(_summary(plans, replayed))
    if unbalanced:
        raise dg.Failure(description=f"the ledger of {unbalanced} does not balance after replay")


@dg.job(
    name=REPLAY_JOB,
    description="After publishing a schema: move the quarantined lines it makes valid into "
    "events/ by re-ingesting their days from landing (idempotent; days with nothing to change "
    "are left as they are).",
)
def replay_quarantine():
    replay_op()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[replay_quarantine])
