"""Replay: after a schema is published, the quarantined lines it makes valid move into events/.

Quarantine keeps each line's reason, landing file and line number. The lines quarantined for a
reason the schemas decide (``REPLAYABLE_REASONS``) are read again from landing and routed again
with the schemas as they are now: ingest's own staging, checks and dedup over just those lines
(``ingest.revalidate_lines``). A day where any of them would now end elsewhere is re-ingested
whole by the caller (``ingest_partition``: idempotent, and its ledger proves every line again), so
a line leaves quarantine exactly when it is stored (or counted as a duplicate of a stored row),
and a second replay finds nothing to change and rewrites nothing.

A day whose landing no longer holds all it read cannot be re-ingested without losing rows: a
landing date it reads was retired by retention, or a landing file its ledger lists is gone. Its
candidate lines are reported as not replayable, never dropped silently, and the day is left as
it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.ingest.landing import LandingRetiredError, landing_dates, list_landing_files
from pipelines.lib.ingest.partition import IngestSettings, revalidate_lines
from pipelines.lib.lake.paths import ledger_dir, quarantine_dir
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake

# The reasons a newly published schema (a new type, a new version, a looser rule) can undo.
REPLAYABLE_REASONS = (
    "unknown_event_type",
    "unknown_schema_version",
    "schema_violation",
    "pii_in_field",
)
SAMPLE_SIZE = 20


@dataclass
class DayPlan:
    """What replaying one day would do."""

    day: date
    candidates: int = 0  # quarantined lines with a replayable reason
    now_stored: int = 0  # would be a row, or a duplicate of one
    reason_changed: int = 0  # still quarantined, for another reason
    blocked: str | None = None  # why the day cannot be re-ingested
    not_replayable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replay(self) -> bool:
        return self.blocked is None and (self.now_stored + self.reason_changed) > 0


def quarantine_days(lake: Lake) -> list[date]:
    """Every day with a quarantine partition."""
    prefix = "event_date="
    return [
        date.fromisoformat(name.removeprefix(prefix))
        for name in lake.list_dirs("quarantine")
        if name.startswith(prefix)
    ]


def replay_candidates(lake: Lake, days: list[date]) -> pa.Table:
    """The quarantined lines of ``days`` with a replayable reason: event_date, landing_file,
    landing_dt, line_no, reason."""
    files = [url for day in sorted(set(days)) for url in lake.parquet_urls(quarantine_dir(day))]
    if not files:
        return pa.table(
            {
                "event_date": pa.array([], pa.date32()),
                "landing_file": pa.array([], pa.string()),
                "landing_dt": pa.array([], pa.date32()),
                "line_no": pa.array([], pa.int64()),
                "reason": pa.array([], pa.string()),
            }
        )
    with lake_connection(lake) as con:
        return con.sql(
            load_sql("ingest/replay_candidates.sql"),
            params={"files": files, "reasons": list(REPLAYABLE_REASONS)},
        ).to_arrow_table()


def _blocked(lake: Lake, day: date) -> str | None:
    """Why re-ingesting ``day`` would lose rows, or None."""
    try:
        present = {f.path for f in list_landing_files(lake, landing_dates(day))}
    except LandingRetiredError as exc:
        return str(exc)
    ledger = lake.read_partition(ledger_dir(day))
    gone = sorted(set(ledger["landing_file"].to_pylist()) - present)
    if gone:
        return (
            f"landing file(s) {gone[:3]} that {day} was built from are gone: re-ingesting it "
            "would lose the rows read from them"
        )
    return None


def plan_day(
    lake: Lake, day: date, candidates: pa.Table, settings: IngestSettings | None = None
) -> DayPlan:
    """Route ``day``'s candidate lines (rows of ``replay_candidates``) again and count what
    would change."""
    plan = DayPlan(day, candidates=candidates.num_rows)
    if not candidates.num_rows:
        return plan
    plan.blocked = _blocked(lake, day)
    if plan.blocked:
        rows = candidates.select(["landing_file", "line_no", "reason"]).slice(0, SAMPLE_SIZE)
        plan.not_replayable = [{**row, "why": plan.blocked} for row in rows.to_pylist()]
        return plan
    lines = candidates.select(["landing_file", "line_no", "reason"])
    verdicts = revalidate_lines(lake, day, lines, settings).rename_columns(
        ["landing_file", "line_no", "fate", "reason_now"]
    )
    joined = lines.join(verdicts, ["landing_file", "line_no"], join_type="left outer")
    fate = joined["fate"]
    stored = pc.is_in(fate, value_set=pa.array(["row", "duplicate"]))
    # A line no longer found where quarantine says (its file was rewritten) changed as well.
    moved = pc.or_kleene(
        pc.is_null(fate),
        pc.and_(
            pc.equal(fate, "quarantined"),
            pc.not_equal(joined["reason_now"], joined["reason"]),
        ),
    )
    plan.now_stored = pc.sum(pc.fill_null(stored, False)).as_py() or 0
    plan.reason_changed = pc.sum(pc.fill_null(moved, False)).as_py() or 0
    return plan


def plan_replay(
    lake: Lake, days: list[date] | None = None, settings: IngestSettings | None = None
) -> list[DayPlan]:
    """A plan for each of ``days`` (default: every day with a quarantine) that has candidates."""
    chosen = quarantine_days(lake) if days is None else sorted(set(days))
    candidates = replay_candidates(lake, chosen)
    plans = []
    for day in sorted(set(candidates["event_date"].to_pylist())):
        mine = candidates.filter(pc.equal(candidates["event_date"], pa.scalar(day, pa.date32())))
        plans.append(plan_day(lake, day, mine, settings))
    return plans
