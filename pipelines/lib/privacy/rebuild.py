"""Which rollups an erasure changed, rebuilt in dependency order (days, then weeks, then months).

A day's rollups read its events and the eve's (a request just before midnight), and a period's
``*_change`` columns read the period before, so the rollups of an affected day, of the next day, of
their weeks and months and of the period after each are rebuilt, where they exist. A period whose
inputs have expired (retention keeps events 90 days, rollups 400) cannot be recomputed: it is
reported, and holds aggregates only, no identifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import (
    DAY,
    MODELS,
    MONTH,
    WEEK,
    RollupSettings,
    build_rollup,
    rollup_dir,
)


@dataclass
class Rebuilt:
    built: list[tuple[str, date]] = field(default_factory=list)
    not_recomputable: list[tuple[str, date, str]] = field(default_factory=list)


def _week(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month(day: date) -> date:
    return day.replace(day=1)


def _next(grain: str, start: date) -> date:
    if grain == DAY:
        return start + timedelta(days=1)
    if grain == WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def periods_touched(days: list[date]) -> dict[str, list[date]]:
    """Every period whose rollups may read one of ``days``, by grain."""
    touched_days = sorted({d for day in days for d in (day, day + timedelta(days=1))})
    starts = {
        DAY: touched_days,
        WEEK: sorted({_week(d) for d in touched_days}),
        MONTH: sorted({_month(d) for d in touched_days}),
    }
    return {
        grain: sorted({s for start in found for s in (start, _next(grain, start))})
        for grain, found in starts.items()
    }


def rebuild_rollups(
    lake: Lake,
    days: list[date],
    settings: RollupSettings,
    log: Callable[[str], None] = lambda _msg: None,
) -> Rebuilt:
    result = Rebuilt()
    touched = periods_touched(days)
    for grain in (DAY, WEEK, MONTH):
        for model in (m for m in MODELS if m.grain == grain):
            for start in touched[grain]:
                if not lake.parquet_files(rollup_dir(model.name, grain, start)):
                    continue  # never built: nothing to correct
                try:
                    build_rollup(lake, model, start, settings)
                except FileNotFoundError as exc:
                    result.not_recomputable.append((model.name, start, str(exc)))
                    log(f"{model.name} {start}: not recomputable ({exc})")
                    continue
                result.built.append((model.name, start))
                log(f"{model.name} {start}: rebuilt")
    return result
