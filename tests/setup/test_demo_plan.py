"""What the demo builds (``pipelines/lib/setup/demo_plan.py``): only the days with data and what
they
read, a default window ending yesterday with a whole week in it, a second run that skips what is
up to date, and an ETA that does not jump between kinds of steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pipelines.lib.lake.calendar import days_between, freshness_expected_day
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.setup import demo_plan
from pipelines.lib.setup.demo_plan import (
    CATALOG,
    DAY,
    FRESHNESS,
    INGEST,
    REPORT_DAY,
    REPORT_WEEK,
    WEEK,
)

FIRST = date(2025, 1, 1)
ROWS = {"request": 10, "ranking": 10, "impression": 80, "click": 4, "error": 1}
EMPTY = dict.fromkeys(ROWS, 0)


def manifest(days: list[date], late: list[date]) -> dict[str, dict]:
    """A sample manifest's partitions: days with events, then days that only quarantine lines."""
    parts = {d.isoformat(): {"rows": ROWS, "quarantined": {"malformed_json": 1}} for d in days}
    for d in late:
        parts[d.isoformat()] = {"rows": EMPTY, "quarantined": {"late_arrival": 3}}
    return parts


def kinds(steps, kind):
    return [s.key for s in steps if s.kind == kind]


@pytest.mark.parametrize("offset", range(7))
def test_the_default_window_ends_yesterday_and_holds_a_whole_week(offset):
    today = date(2026, 12, 7) + timedelta(days=offset)  # a Monday, then each weekday
    start, days = demo_plan.default_window(today)
    last = start + timedelta(days=days - 1)
    assert last == today - timedelta(days=1)
    assert start.weekday() == 0 and 7 <= days <= 13


def test_a_window_before_the_first_date_names_the_variable():
    with pytest.raises(ConfigError, match="TELEMETRY_FIRST_DATE=2025-06-01"):
        demo_plan.check_window(date(2025, 5, 30), 7, date(2025, 6, 1), date(2026, 1, 1))


def test_a_window_reaching_today_says_what_to_change():
    with pytest.raises(ConfigError, match="--start or fewer --days"):
        demo_plan.check_window(date(2026, 12, 1), 7, FIRST, date(2026, 12, 7))


def test_a_pinned_week_builds_its_days_and_no_empty_ones():
    week = days_between(date(2025, 6, 2), date(2025, 6, 8))
    late = days_between(date(2025, 6, 9), date(2025, 6, 13))
    landing = days_between(date(2025, 6, 1), date(2025, 6, 13))
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    steps = demo_plan.plan(manifest(week, late), landing, FIRST, now.date(), now)
    # Every partition that owns a line, then 06-14, which reads landing 06-13 and is due: the
    # landing sensor finds it up to date. 05-30 .. 06-01 read landing 06-01 too, but come before
    # the lake's first built day, which the sensor leaves alone.
    assert kinds(steps, INGEST) == days_between(date(2025, 6, 2), date(2025, 6, 14))
    assert kinds(steps, DAY) == week  # contracts and rollups: days with events only
    assert kinds(steps, WEEK) == [date(2025, 6, 2)]
    assert kinds(steps, demo_plan.MONTH) == []  # June is not all there
    assert kinds(steps, REPORT_DAY) == week
    assert kinds(steps, REPORT_WEEK) == [date(2025, 6, 2)]
    assert [s.kind for s in steps[-2:]] == [CATALOG, FRESHNESS]
    [first_day] = [s for s in steps if s.id == (DAY, week[0])]
    assert set(first_day.needs) == {(INGEST, week[0]), (INGEST, week[1])}


def test_the_default_demo_ingests_no_partition_that_has_not_ended():
    now = datetime(2026, 12, 7, 1, tzinfo=UTC)  # before the daily run of 12-06 at 02:00
    start, n = demo_plan.default_window(now.date())
    days = days_between(start, start + timedelta(days=n - 1))
    late = days_between(days[-1] + timedelta(days=1), days[-1] + timedelta(days=5))
    landing = days_between(start - timedelta(days=1), late[-1])
    steps = demo_plan.plan(manifest(days, late), landing, FIRST, now.date(), now)
    assert kinds(steps, INGEST) == days
    assert kinds(steps, DAY)[-1] == now.date() - timedelta(days=1)


def test_a_day_waits_for_its_anomaly_baseline_once_it_has_one():
    days = days_between(date(2025, 6, 2), date(2025, 6, 12))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    steps = demo_plan.plan(manifest(days, []), days, FIRST, now.date(), now, bands=(28, 7))
    needs = {s.key: {n for n in s.needs if n[0] == DAY} for s in steps if s.kind == DAY}
    assert needs[date(2025, 6, 8)] == set()  # 6 days before it: not judged, no baseline
    assert needs[date(2025, 6, 9)] == {(DAY, d) for d in days[:7]}


def test_a_second_run_skips_what_is_up_to_date_and_redoes_what_read_a_changed_day():
    week = days_between(date(2025, 6, 2), date(2025, 6, 8))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    steps = demo_plan.plan(manifest(week, []), week, FIRST, now.date(), now)
    everything = {s.id for s in steps}
    assert demo_plan.stale(steps, everything, force=False) == []
    assert demo_plan.stale(steps, everything, force=True) == steps
    redo = demo_plan.stale(steps, everything - {(INGEST, date(2025, 6, 4))}, force=False)
    assert kinds(redo, INGEST) == [date(2025, 6, 4)]
    # The contracts of 06-03 .. 06-05 read it; the week and the reports from 06-03 on read those.
    assert kinds(redo, DAY) == days_between(date(2025, 6, 3), date(2025, 6, 5))
    assert kinds(redo, REPORT_DAY) == days_between(date(2025, 6, 3), date(2025, 6, 8))
    assert {s.kind for s in redo} >= {WEEK, REPORT_WEEK, CATALOG, FRESHNESS}


def test_the_eta_scales_priors_by_what_was_measured_then_uses_each_kinds_mean():
    steps = [demo_plan.Step(INGEST, None)] * 4 + [demo_plan.Step(DAY, None)] * 4
    eta = demo_plan.Eta(steps, workers=2)
    assert eta.remaining() is None
    eta.done(INGEST, 2.0)
    # 3 ingests at 2 s, 4 days at 2.5 x 2 s, on 2 workers.
    assert eta.remaining() == pytest.approx((3 * 2 + 4 * 5) / 2)
    eta.done(INGEST, 2.0)
    eta.done(DAY, 8.0)
    assert eta.remaining() == pytest.approx((2 * 2 + 3 * 8) / 2)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 7, 5, 59, tzinfo=UTC), date(2026, 12, 5)),
        (datetime(2026, 12, 7, 6, 0, tzinfo=UTC), date(2026, 12, 6)),
    ],
)
def test_the_freshness_checks_expect_yesterday_from_six(now, expected):
    assert freshness_expected_day(now) == expected
