"""What the demo builds, in which order, which of it a second run may skip, and how long the rest
should take (no Dagster here; ``pipelines/demo.py`` runs the steps).

The demo builds only the days that hold sample data and what their contracts read:

* **ingest** every partition the sample gives lines to (its days with events, and the later days
  whose partitions quarantine the sample's very late lines), plus any later partition that reads
  the sample's landing files and is already due, so that the landing sensor, on its first tick in
  ``dg dev``, finds every reader of those files up to date and launches nothing. (Partitions
  before the first one built read the sample's early files too; the sensor leaves days before a
  lake's first built day to a backfill on purpose, ``lib/automation/landing_watch.py``.)
* **contracts and daily rollups** of the days with events only, each once the ingests of D-1..D+1
  ran (its contracts read them): no day of all-zero rollups, no contracts row of 0 events.
* **weekly and monthly rollups** of the Monday..Sunday weeks and the months wholly inside those
  days, then the operational reports of those days and weeks, the analysts' catalog and the
  freshness checks.

A step is *up to date* when Dagster holds a materialisation of each of its assets for its
partition and none of the steps it reads ran again in this demo; an ingest also needs its ledger
to list every landing file it reads, with the same size (the landing sensor's own rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pipelines.lib.ingest.landing import reading_partitions
from pipelines.lib.lake import settings
from pipelines.lib.lake.calendar import daily_run_due, days_between
from pipelines.lib.lake.errors import ConfigError

INGEST = "ingest"
DAY = "day"  # contracts and the daily rollups
WEEK = "week"
MONTH = "month"
REPORT_DAY = "report_day"
REPORT_WEEK = "report_week"
CATALOG = "catalog"
FRESHNESS = "freshness"
KINDS = (INGEST, DAY, WEEK, MONTH, REPORT_DAY, REPORT_WEEK, CATALOG, FRESHNESS)

# The demo's default: the latest whole Monday..Sunday week, and the days since it, through
# yesterday (UTC). Its last day is yesterday so the freshness checks are honestly green in
# `dg dev`, and its first is a Monday so the week's report exists, whatever the weekday.
WEEK_DAYS = 7

# What one step costs against one ingest of a sample day, measured on 2 cores (the contracts'
# Great Expectations suites make a day's build the dearest). Only the first estimates use them:
# once a step of a kind has run, its measured mean replaces the prior.
RELATIVE_COST = {
    INGEST: 1.0,
    DAY: 2.5,
    WEEK: 0.3,
    MONTH: 0.3,
    REPORT_DAY: 0.2,
    REPORT_WEEK: 0.2,
    CATALOG: 0.2,
    FRESHNESS: 0.3,
}


@dataclass(frozen=True)
class Step:
    kind: str
    key: date | None  # the partition (a day, a week's Monday, a month's 1st); None: unpartitioned
    needs: tuple[tuple[str, date | None], ...] = ()  # steps whose re-run makes this one stale

    @property
    def id(self) -> tuple[str, date | None]:
        return (self.kind, self.key)

    def label(self) -> str:
        return self.kind if self.key is None else f"{self.kind} {self.key.isoformat()}"


def default_window(today: date) -> tuple[date, int]:
    """(first day, number of days) of the default demo: from the Monday of the latest whole
    Monday..Sunday week through yesterday, 7 to 13 days."""
    yesterday = today - timedelta(days=1)
    last_sunday = yesterday - timedelta(days=(yesterday.weekday() + 1) % 7)
    monday = last_sunday - timedelta(days=WEEK_DAYS - 1)
    return monday, (yesterday - monday).days + 1


# Two months: a demo, not a backfill (--days 400 wrote 2.5 GB of landing files and ~2,000 runs).
MAX_DAYS = 62


def check_window(start: date, days: int, first: date, today: date) -> list[date]:
    """The days ``start`` .. ``start + days - 1``, each a daily partition that exists
    (TELEMETRY_FIRST_DATE .. yesterday); a ConfigError naming what to change otherwise."""
    if days < 1:
        raise ConfigError(f"--days {days}: give at least 1")
    if days > MAX_DAYS:
        raise ConfigError(
            f"--days {days}: the demo builds at most {MAX_DAYS} days (about 5 s a day on 2 "
            "cores); for more history, write a sample with python -m pipelines.sample and "
            "backfill the daily_lake job"
        )
    last = start + timedelta(days=days - 1)
    settings.daily_partition(start.isoformat(), first, today)
    try:
        settings.daily_partition(last.isoformat(), first, today)
    except ConfigError as exc:
        raise ConfigError(
            f"the demo's last day would be {last.isoformat()}: {exc}; pass an earlier --start "
            "or fewer --days"
        ) from exc
    return days_between(start, last)


def has_events(counts: Mapping[str, object]) -> bool:
    """Whether a sample manifest's partition entry holds any valid event (not only quarantine)."""
    rows = counts.get("rows") or {}
    return any(int(n) > 0 for n in rows.values())  # type: ignore[union-attr]


def plan(
    partitions: Mapping[str, Mapping[str, object]],
    landing_dates: Iterable[date],
    first: date,
    today: date,
    now: datetime,
    bands: tuple[int, int] = (28, 7),
) -> list[Step]:
    """Every step, in an order that respects what each reads. ``partitions`` is the sample
    manifest's (day -> counts), ``landing_dates`` its arrival dates, ``first`` the first daily
    partition (TELEMETRY_FIRST_DATE), ``today`` and ``now`` in UTC, ``bands`` the SLO anomaly
    bands' (window_days, min_history) from slo.yaml.

    Steps run in parallel once what they need has run, so ``needs`` lists every step whose output
    a step reads: a day's contracts the ingest of D-1..D+1; a day's SLO checks, once it has
    ``min_history`` days in its window, those days' rollups (its baseline); a week or month its
    days and the previous week or month (the change columns); a report the rollups it charts."""

    def exists(day: date) -> bool:
        return first <= day < today

    owners = {date.fromisoformat(d) for d in partitions if exists(date.fromisoformat(d))}
    days = sorted(d for d in owners if has_events(partitions[d.isoformat()]))
    if not days:
        return []
    readers = {d for dt in landing_dates for d in reading_partitions(dt)}
    due = {d for d in readers if exists(d) and d > min(owners) and daily_run_due(d, now)}
    ingested = sorted(owners | due)
    built = set(days)

    window_days, min_history = bands
    steps = [Step(INGEST, d) for d in ingested]
    for d in days:
        near = [n for n in (d - timedelta(days=1), d, d + timedelta(days=1)) if n in ingested]
        baseline = [b for b in days if d - timedelta(days=window_days) <= b < d]
        judged = baseline if len(baseline) >= min_history else []
        steps.append(Step(DAY, d, (*((INGEST, n) for n in near), *((DAY, b) for b in judged))))
    weeks = [
        d
        for d in days
        if d.weekday() == 0 and all(d + timedelta(days=n) in built for n in range(WEEK_DAYS))
    ]
    for w in weeks:
        before = (WEEK, w - timedelta(days=WEEK_DAYS))
        days_of = _days_of(w, w + timedelta(days=WEEK_DAYS - 1))
        steps.append(Step(WEEK, w, (*days_of, *([before] if before[1] in weeks else []))))
    months = [
        m
        for m in sorted({d.replace(day=1) for d in days})
        if _month_end(m) < today and all(d in built for d in days_between(m, _month_end(m)))
    ]
    for m in months:
        before = (MONTH, (m - timedelta(days=1)).replace(day=1))
        days_of = _days_of(m, _month_end(m))
        steps.append(Step(MONTH, m, (*days_of, *([before] if before[1] in months else []))))
    for d in days:
        # Its trend charts the days before it.
        steps.append(Step(REPORT_DAY, d, _days_of(days[0], d)))
    for w in weeks:
        # It compares the week with the one before.
        earlier = [(WEEK, e) for e in weeks if e <= w]
        steps.append(Step(REPORT_WEEK, w, (*earlier, *_days_of(w, w + timedelta(days=6)))))
    # The catalog's views change only with the set of tables, but a first partition of a table
    # gives it its view: rebuilt whenever anything before it ran.
    steps.append(Step(CATALOG, None, tuple(s.id for s in steps)))
    steps.append(Step(FRESHNESS, None, tuple(s.id for s in steps if s.kind in (INGEST, DAY))))
    return steps


def _days_of(first: date, last: date) -> tuple[tuple[str, date | None], ...]:
    return tuple((DAY, d) for d in days_between(first, last))


def _month_end(first: date) -> date:
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def stale(steps: list[Step], built: set[tuple[str, date | None]], force: bool) -> list[Step]:
    """The steps to run: with ``force`` all of them; otherwise each step not in ``built`` (up to
    date in Dagster and the lake) and each one that reads a step about to run."""
    run: set[tuple[str, date | None]] = set()
    for step in steps:
        if force or step.id not in built or any(n in run for n in step.needs):
            run.add(step.id)
    return [s for s in steps if s.id in run]


class Eta:
    """Time left for a list of steps run by ``workers`` processes: each remaining step costs the
    mean of the steps of its kind measured so far or, before one has ended, its RELATIVE_COST
    times the time measured per unit of cost. The estimate changes as measurements replace
    priors, not as the mix of steps done changes, so it does not jump between kinds."""

    def __init__(self, steps: Iterable[Step], workers: int) -> None:
        self.pending = [s.kind for s in steps]
        self.workers = max(1, workers)
        self.seconds: dict[str, list[float]] = {}

    def done(self, kind: str, seconds: float) -> None:
        self.pending.remove(kind)
        self.seconds.setdefault(kind, []).append(seconds)

    def remaining(self) -> float | None:
        """Seconds left, None before any step has ended (nothing to scale by yet)."""
        measured = [(k, t) for k, times in self.seconds.items() for t in times]
        if not measured:
            return None
        per_unit = sum(t for _, t in measured) / sum(RELATIVE_COST[k] for k, _ in measured)

        def cost(kind: str) -> float:
            times = self.seconds.get(kind)
            return sum(times) / len(times) if times else RELATIVE_COST[kind] * per_unit

        return sum(cost(k) for k in self.pending) / self.workers
