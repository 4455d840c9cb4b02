"""Which partition each schedule tick targets, and when a day is due, at fixed instants."""

from datetime import UTC, date, datetime

import pytest

from pipelines.lib.lake import calendar


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tick", "day"),
    [(at(2025, 6, 3, 2), date(2025, 6, 2)), (at(2025, 1, 1, 2), date(2024, 12, 31))],
)
def test_the_daily_tick_builds_yesterday(tick, day):
    assert calendar.previous_day(tick) == day


@pytest.mark.parametrize(
    ("tick", "monday"),
    [
        (at(2025, 6, 9, 4), date(2025, 6, 2)),  # the Monday tick: the week that just ended
        (at(2025, 6, 15, 23), date(2025, 6, 2)),  # still that week until the next Monday
        (at(2025, 1, 6, 4), date(2024, 12, 30)),  # a week across the new year
    ],
)
def test_the_weekly_tick_builds_the_week_that_just_ended(tick, monday):
    assert calendar.previous_week_start(tick) == monday


@pytest.mark.parametrize(
    ("tick", "first"),
    [(at(2025, 7, 1, 5), date(2025, 6, 1)), (at(2025, 1, 1, 5), date(2024, 12, 1))],
)
def test_the_monthly_tick_builds_the_month_that_just_ended(tick, first):
    assert calendar.previous_month_start(tick) == first


def test_a_day_is_due_from_02_00_utc_the_next_day():
    day = date(2025, 6, 2)
    assert not calendar.daily_run_due(day, at(2025, 6, 3, 1, 59))
    assert calendar.daily_run_due(day, at(2025, 6, 3, 2, 0))
    # The same instant in another time zone is the same answer.
    from zoneinfo import ZoneInfo

    paris = datetime(2025, 6, 3, 4, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert calendar.daily_run_due(day, paris)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        calendar.previous_day(datetime(2025, 6, 3, 2))


def test_days_between_includes_both_ends_and_crosses_months():
    assert calendar.days_between(date(2025, 1, 30), date(2025, 2, 2)) == [
        date(2025, 1, 30),
        date(2025, 1, 31),
        date(2025, 2, 1),
        date(2025, 2, 2),
    ]
    assert calendar.days_between(date(2025, 6, 2), date(2025, 6, 2)) == [date(2025, 6, 2)]
    assert calendar.days_between(date(2025, 6, 3), date(2025, 6, 2)) == []
