"""One day of the lake against its SLOs (``slo.yaml``) and against its own recent past.

The metrics come from the SQL files under ``sql/slo/`` run on DuckDB over the day's Parquet: the
daily rollups (``traffic_daily`` for the whole day, ``traffic_parts`` for exact per-surface
latency percentiles), the ledger (lines read, quarantined, landed late) and the quarantine (per
reason). Only the rows those queries return (days x slices) reach Python.

SLOs, each judged on the day (``SloResult.ok``) with the month's error budget beside it:

* rate ceilings, ``error_rate`` (errors / requests), ``quarantine_share`` (quarantined lines /
  lines read) and ``late_share`` (rows that landed after their event date / rows written, the
  ingest's own ``late_share``). Budget used = bad events / (ceiling x events), both summed over
  the calendar month from its 1st through the day: the share of the bad events the month may
  have that it has had. 1.0 means the month to date sits exactly at the ceiling.
* per-day targets, ``latency_p95_ms`` and ``latency_p99_ms`` per surface (a percentile of one
  day's rankings, so not a sum of events) and the ``ctr`` floor. Budget used = days of the month
  through the day that missed the target / ``allowed_bad_days_per_month``. 1.0 means the month
  has missed as many days as it may.

Each result also carries its :class:`Budget`: what the month has spent from its 1st through the
day against what its pace allows by then (the pace spends exactly the month's budget by its last
day). ``Budget.burn`` = spent / pace: for a rate ceiling the month-to-date rate / the ceiling
(bad events / (ceiling x events)); for a per-day target the days missed / (allowed days x days
elapsed / days in the month). Below 1.0x the month is within its budget, whatever day it is:
what the reports show, where "65% of the budget used" on the 2nd read as an alarm.

Days without data do not count against a budget. Rankings whose request was not found carry no
surface and are held to no surface's latency target (contract ranking_has_one_request counts
them).

Anomalies: each watched metric's day is judged by :func:`pipelines.lib.slo.anomaly.bands`
against its trailing ``window_days``; for a flagged day, the slice (surface, device type,
experiment bucket, quarantine reason) that moved most says where to look. For a count that is
the slice whose change from its own expected value is largest, which is the largest part of
the total's change. For a rate or percentile each slice's change is weighted by its share of
the day's denominator (impressions for CTR, requests for the error rate, rankings for latency):
the part of the total's change that comes from within the slice (a shift of mix between slices
is not attributed).

A day is judged, and has a band, only once its window holds ``min_history`` days with a value
(slo.yaml: 7) counted from the lake's first day with data (:func:`metric_series`); before that
its result has no band and is not flagged. The band (and the expected value) is clamped to the
values the metric can take (:data:`DOMAINS`): a count's band never reaches below 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lib.ingest.ledger import ledger_schema
from pipelines.lib.ingest.quarantine import QUARANTINE_SCHEMA
from pipelines.lib.lake.calendar import days_between
from pipelines.lib.lake.paths import ledger_dir, quarantine_dir
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import DAY, rollup_dir
from pipelines.lib.schemas.registry import event_types
from pipelines.lib.slo.anomaly import BandSettings, bands, slice_that_moved_most
from pipelines.lib.slo.config import METRICS, SloConfig, load_slo_config

__all__ = [
    "METRICS",
    "AnomalyResult",
    "SloConfig",
    "SloResult",
    "anomalies_for_day",
    "evaluate_day",
    "load_slo_config",
    "metric_series",
]

MAX, MIN = "max", "min"
# The series a day is judged on reaches this many windows back, not one: days flagged early in
# the window are left out of its baseline only if they were themselves judged.
HISTORY_WINDOWS = 2


RATE, DAYS = "rate", "days"


@dataclass(frozen=True)
class Budget:
    """One SLO's error budget from the 1st of the month through the judged day, against the pace
    that would spend exactly the month's budget by its last day."""

    kind: str  # RATE: bad events under a ceiling; DAYS: days that missed a per-day target
    spent: float  # bad events (RATE) or days missed (DAYS), month to date
    pace: float  # what the budget allows by the day: ceiling x events, or days x elapsed share
    events: float  # RATE: the events the bad ones are a share of, month to date; DAYS: days judged
    ceiling: float | None  # RATE: the SLO's ceiling
    allowed_days: int | None  # DAYS: bad days the whole month may have
    days_elapsed: int  # calendar days from the 1st through the judged day
    days_in_month: int

    @property
    def burn(self) -> float | None:
        """spent / pace: 1.0 spends the month's budget exactly; None for bad events without any
        events to pace them against (errors on a day without requests)."""
        if self.spent == 0:
            return 0.0
        return self.spent / self.pace if self.pace > 0 else None

    @property
    def month_to_date(self) -> float | None:
        """RATE: the month-to-date rate (bad / events), None without events; DAYS: None."""
        if self.kind != RATE or not self.events:
            return None
        return self.spent / self.events


@dataclass(frozen=True)
class SloResult:
    name: str  # stable id, e.g. "latency_p95_ms.surface=home", "error_rate"
    # latency_p95_ms | latency_p99_ms | error_rate | ctr | quarantine_share | late_share
    metric: str
    slice: str | None  # e.g. "surface=home"; None for the whole day
    measured: float | None  # None when the day has no data for it
    target: float
    direction: str  # "max" (a ceiling) or "min" (a floor)
    ok: bool
    # Rates: bad / (ceiling x events), month to date; per-day targets: days missed / the month's
    # allowed bad days (what the SLO checks report as budget_used_this_month).
    budget_used: float
    budget: Budget | None = None  # month to date against its pace (the reports' burn)


@dataclass(frozen=True)
class AnomalyResult:
    metric: str
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    z_score: float | None
    flagged: bool
    direction: str | None  # "high" | "low" when flagged
    slice_moved_most: str | None  # e.g. "surface=home" or "bucket=exp-a/treatment"
    history_days: int


# --- reading the lake ----------------------------------------------------------------------------

_ROLLUP_DIMENSIONS = [
    ("experiment_id", pa.string()),
    ("bucket", pa.string()),
    ("surface", pa.string()),
    ("device_type", pa.string()),
]


@dataclass(frozen=True)
class _Input:
    folder: Callable[[date], str]  # the day's partition folder
    schema: Callable[[], pa.Schema]  # of the view when no day has a file (the columns read)


# The views the SQL files read; each gets event_date from its partition folder's name.
_INPUTS = {
    "daily_traffic": _Input(
        lambda d: rollup_dir("traffic_daily", DAY, d),
        lambda: pa.schema(
            [
                *_ROLLUP_DIMENSIONS,
                ("is_all_traffic", pa.bool_()),
                *[(n, pa.int64()) for n in ("requests", "rankings", "impressions", "clicks")],
                ("errors", pa.int64()),
                *[(n, pa.float64()) for n in ("ctr", "error_rate", "latency_p95_ms")],
                ("latency_p99_ms", pa.float64()),
            ]
        ),
    ),
    "daily_parts": _Input(
        lambda d: rollup_dir("traffic_parts", DAY, d),
        lambda: pa.schema(
            [*_ROLLUP_DIMENSIONS, ("part_name", pa.string()), ("measure", pa.float64())]
        ),
    ),
    "daily_ledger": _Input(ledger_dir, lambda: ledger_schema(event_types())),
    "daily_quarantine": _Input(quarantine_dir, lambda: QUARANTINE_SCHEMA),
}
# sql/slo/<name>.sql -> the views it reads.
_QUERIES = {
    "daily_metrics": ("daily_traffic", "daily_ledger"),
    "latency_slices": ("daily_parts",),
    "traffic_slices": ("daily_traffic",),
    "quarantine_slices": ("daily_quarantine", "daily_ledger"),
}


def _register(
    con: duckdb.DuckDBPyConnection, lake: Lake, view: str, first: date, last: date
) -> None:
    source = _INPUTS[view]
    urls = [url for d in days_between(first, last) for url in lake.parquet_urls(source.folder(d))]
    if urls:
        # By name: a ledger written before a column was added (blank_lines) lacks it.
        relation = con.read_parquet(urls, hive_partitioning=True, union_by_name=True)
    else:
        empty = source.schema().append(pa.field("event_date", pa.date32())).empty_table()
        relation = con.from_arrow(empty)
    relation.create_view(view)


def _query(lake: Lake, first: date, last: date, *names: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``sql/slo/<name>.sql`` for each name, over the days ``first..last``."""
    params = {"period_start": first, "period_end": last}
    with lake_connection(lake) as con:
        # What several queries share (the slices' dimensions, a day's ledger sums), defined once
        # in sql/slo/macros.sql (temporary: they live as long as the connection).
        con.execute(load_sql("slo/macros.sql"))
        for view in dict.fromkeys(v for name in names for v in _QUERIES[name]):
            _register(con, lake, view, first, last)
        return {
            name: con.sql(load_sql(f"slo/{name}.sql"), params=params).to_arrow_table().to_pylist()
            for name in names
        }


def _has_data(row: Mapping[str, Any]) -> bool:
    return bool(row["requests"]) or bool(row["lines_read"])


def metric_series(lake: Lake, last_day: date, days: int) -> dict[str, dict[date, float]]:
    """Every metric of :data:`METRICS` per day of the ``days`` days through ``last_day``; a day
    without a value for a metric (no data, zero denominator) is left out of that metric's.

    Days before the first one with data (requests, or lines read by ingest) are left out too:
    they come before the lake's traffic (its first day's eve, days built before data arrived),
    and read as zeros they would be a fall to nothing in every baseline for a whole window. A
    day without data after that is kept: traffic stopping is what a band should flag."""
    first = last_day - timedelta(days=days - 1)
    rows = _query(lake, first, last_day, "daily_metrics")["daily_metrics"]
    start = next((i for i, r in enumerate(rows) if _has_data(r)), len(rows))
    rows = rows[start:]
    return {m: {r["event_date"]: float(r[m]) for r in rows if r[m] is not None} for m in METRICS}


# --- SLOs ----------------------------------------------------------------------------------------


def rate_budget_used(bad: float, events: float, ceiling: float) -> float:
    """Bad events / the bad events the ceiling allows among ``events``; 0 without events."""
    return bad / (ceiling * events) if events else 0.0


def days_budget_used(
    values: Iterable[float | None], target: float, direction: str, allowed_days: int
) -> float:
    """Days whose value missed ``target`` / the days a month may miss; days without a value do
    not count."""
    missed = sum(1 for v in values if v is not None and not _meets(v, target, direction))
    return missed / allowed_days


def _meets(value: float, target: float, direction: str) -> bool:
    return value <= target if direction == MAX else value >= target


def _days_in_month(day: date) -> int:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (following - day.replace(day=1)).days


def rate_budget(bad: float, events: float, ceiling: float, day: date) -> Budget:
    """The month to date of a rate ceiling: ``bad`` of ``events`` from the 1st through ``day``."""
    return Budget(RATE, bad, ceiling * events, events, ceiling, None, day.day, _days_in_month(day))


def days_budget(
    values: Iterable[float | None], target: float, direction: str, allowed_days: int, day: date
) -> Budget:
    """The month to date of a per-day target: ``values`` are the days' values from the 1st
    through ``day`` (None: no data, not counted)."""
    judged = [v for v in values if v is not None]
    missed = sum(1 for v in judged if not _meets(v, target, direction))
    month_days = _days_in_month(day)
    pace = allowed_days * day.day / month_days
    return Budget(DAYS, missed, pace, len(judged), None, allowed_days, day.day, month_days)


def _result(
    metric: str,
    slice_: str | None,
    measured: float | None,
    target: float,
    direction: str,
    budget_used: float,
    budget: Budget,
) -> SloResult:
    return SloResult(
        name=f"{metric}.{slice_}" if slice_ else metric,
        metric=metric,
        slice=slice_,
        measured=measured,
        target=target,
        direction=direction,
        ok=measured is None or _meets(measured, target, direction),
        budget_used=budget_used,
        budget=budget,
    )


def _rate_slo(
    metric: str, daily: Mapping[date, dict], day: date, bad: str, events: str, ceiling: float
) -> SloResult:
    month = daily.values()
    bad_count = sum(r[bad] or 0 for r in month)
    event_count = sum(r[events] or 0 for r in month)
    return _result(
        metric,
        None,
        daily.get(day, {}).get(metric),
        ceiling,
        MAX,
        rate_budget_used(bad_count, event_count, ceiling),
        rate_budget(bad_count, event_count, ceiling, day),
    )


def _per_day_slo(
    metric: str,
    slice_: str | None,
    by_day: Mapping[date, float | None],
    day: date,
    target: float,
    direction: str,
    allowed_days: int,
) -> SloResult:
    return _result(
        metric,
        slice_,
        by_day.get(day),
        target,
        direction,
        days_budget_used(by_day.values(), target, direction, allowed_days),
        days_budget(by_day.values(), target, direction, allowed_days, day),
    )


def evaluate_day(lake: Lake, day: date, config: SloConfig) -> list[SloResult]:
    """Every SLO of ``config`` for ``day``, with the budget used from the 1st of its month through
    ``day``: error_rate, ctr, quarantine_share, late_share, then latency p95 and p99 per surface
    (the surfaces ``config`` names and those with rankings on ``day``, by name)."""
    first = day.replace(day=1)
    rows = _query(lake, first, day, "daily_metrics", "latency_slices")
    daily = {r["event_date"]: r for r in rows["daily_metrics"]}
    latency: dict[str, dict[date, dict]] = defaultdict(dict)
    for r in rows["latency_slices"]:
        if r["dimension"] == "surface" and r["slice_value"] is not None:
            latency[r["slice_value"]][r["event_date"]] = r
    allowed = config.allowed_bad_days_per_month
    results = [
        _rate_slo("error_rate", daily, day, "errors", "requests", config.error_rate_max),
        _per_day_slo(
            "ctr", None, {d: r["ctr"] for d, r in daily.items()}, day, config.ctr_min, MIN, allowed
        ),
        _rate_slo(
            "quarantine_share", daily, day, "quarantined", "lines_read", config.quarantine_share_max
        ),
        _rate_slo(
            "late_share", daily, day, "rows_landed_late", "rows_written", config.late_share_max
        ),
    ]
    targets = {"latency_p95_ms": config.latency_p95_ms, "latency_p99_ms": config.latency_p99_ms}
    named = {s for t in targets.values() for s in t.surfaces_ms}
    surfaces = sorted(named | {s for s, by_day in latency.items() if day in by_day})
    for metric, target in targets.items():
        for surface in surfaces:
            by_day = {d: r[metric] for d, r in latency.get(surface, {}).items()}
            results.append(
                _per_day_slo(
                    metric,
                    f"surface={surface}",
                    by_day,
                    day,
                    target.for_surface(surface),
                    MAX,
                    allowed,
                )
            )
    return results


# --- anomalies -----------------------------------------------------------------------------------


_COUNTS = ("requests", "impressions", "clicks", "errors")
# The values each metric can take. A band is clamped to them (the model's normal band can reach
# below 0 or above 1; no day can): counts and latencies are never negative, and a share of a whole
# (quarantined of the lines read, late of the rows written) never exceeds 1. ctr and error_rate
# are events per event and can exceed 1 (an impression clicked with several engagement types, a
# request that logs several errors), so only their floor is 0. Clamping only cuts off values no
# day can have, so a value is outside the clamped band exactly when it is outside the model's.
DOMAINS: dict[str, tuple[float, float]] = {
    **{m: (0.0, math.inf) for m in (*_COUNTS, "ctr", "error_rate")},
    **{m: (0.0, math.inf) for m in ("latency_p95_ms", "latency_p99_ms")},
    **{m: (0.0, 1.0) for m in ("quarantine_share", "late_share")},
}


@dataclass(frozen=True)
class _Slicing:
    query: str  # sql/slo/<query>.sql
    value: str  # the slice's value of the metric
    weight: str | None  # the metric's denominator, for rates and percentiles; None: a count


_SLICINGS = {
    **{m: _Slicing("traffic_slices", m, None) for m in _COUNTS},
    "ctr": _Slicing("traffic_slices", "ctr", "impressions"),
    "error_rate": _Slicing("traffic_slices", "error_rate", "requests"),
    "latency_p95_ms": _Slicing("latency_slices", "latency_p95_ms", "rankings"),
    "latency_p99_ms": _Slicing("latency_slices", "latency_p99_ms", "rankings"),
    # Every reason's share is of the same lines read: they add up to the day's, like counts.
    "quarantine_share": _Slicing("quarantine_slices", "quarantine_share", None),
    # late_share: the ledger counts late rows per landing file only, which no other day shares.
}


def anomalies_for_day(lake: Lake, day: date, config: SloConfig) -> list[AnomalyResult]:
    """Each watched metric of ``config`` for ``day`` against its band (see module docstring)."""
    settings = config.bands
    history = metric_series(lake, day, HISTORY_WINDOWS * settings.window_days + 1)
    slice_rows: dict[str, list[dict[str, Any]]] = {}

    def rows_of(query: str) -> list[dict[str, Any]]:
        # Read only for a flagged metric, once per query; the slices' baselines need one window.
        if query not in slice_rows:
            first = day - timedelta(days=settings.window_days)
            slice_rows[query] = _query(lake, first, day, query)[query]
        return slice_rows[query]

    results = []
    for metric in config.watched_metrics:
        result = _judge(metric, history[metric], day, settings)
        slicing = _SLICINGS.get(metric)
        if result.flagged and slicing is not None:
            moved = _slice_moved_most(slicing, rows_of(slicing.query), day, settings)
            result = replace(result, slice_moved_most=moved)
        results.append(result)
    return results


def _judge(
    metric: str, series: Mapping[date, float], day: date, settings: BandSettings
) -> AnomalyResult:
    window_start = day - timedelta(days=settings.window_days)
    history_days = sum(1 for d in series if window_start <= d < day)
    band = next((b for b in reversed(bands(series, settings)) if b.day == day), None)
    if band is None:  # no value that day, or too little history to judge it
        return AnomalyResult(
            metric, series.get(day), None, None, None, None, False, None, None, history_days
        )
    flagged = abs(band.z) > settings.width
    low, high = DOMAINS[metric]
    return AnomalyResult(
        metric=metric,
        value=band.value,
        expected=min(max(band.expected, low), high),
        lower=max(band.lower, low),
        upper=min(band.upper, high),
        z_score=band.z,
        flagged=flagged,
        direction=("high" if band.z > 0 else "low") if flagged else None,
        slice_moved_most=None,
        history_days=history_days,
    )


def _slice_moved_most(
    slicing: _Slicing, rows: list[dict[str, Any]], day: date, settings: BandSettings
) -> str | None:
    series: dict[str, dict[date, float]] = defaultdict(dict)
    weight_today: dict[str, float] = {}
    dimension_of: dict[str, str] = {}
    for r in rows:
        if r[slicing.value] is None:
            continue
        series[r["slice"]][r["event_date"]] = float(r[slicing.value])
        if slicing.weight and r["event_date"] == day:
            weight_today[r["slice"]] = float(r[slicing.weight])
            dimension_of[r["slice"]] = r["dimension"]
    # Each dimension splits the whole day: a slice's share is of its own dimension's total.
    dimension_total: dict[str, float] = defaultdict(float)
    for s, weight in weight_today.items():
        dimension_total[dimension_of[s]] += weight

    today, baseline = {}, {}
    for s, values in series.items():
        share = 1.0
        if slicing.weight:
            if not weight_today.get(s):
                continue  # no share of today's denominator: no part in today's rate
            share = weight_today[s] / dimension_total[dimension_of[s]]
        if day in values:
            today[s] = share * values[day]
        expected = _slice_expected(values, day, settings)
        if expected is not None:
            baseline[s] = share * expected
    moved = slice_that_moved_most(today, baseline)
    return moved[0] if moved else None


def _slice_expected(
    values: Mapping[date, float], day: date, settings: BandSettings
) -> float | None:
    """The slice's band centre for ``day``, or, where its history is too short for a band (or it
    has no value that day), the mean of its window; None for a slice new today."""
    if day in values:
        band = next((b for b in reversed(bands(values, settings)) if b.day == day), None)
        if band is not None:
            return band.expected
    window_start = day - timedelta(days=settings.window_days)
    past = [v for d, v in values.items() if window_start <= d < day]
    return sum(past) / len(past) if past else None
