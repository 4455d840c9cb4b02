"""The lake's clock, in UTC: when each scheduled run happens and which partition it targets.

A day D is complete at midnight, but its late lines keep landing for two more days (partition D
reads landing dt D-1 .. D+2), so each schedule leaves room after its period ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

# Every day at 02:00 UTC: ingest, contracts and daily rollups of yesterday.
DAILY_CRON = "0 2 * * *"
DAILY_HOUR_UTC = 2
# Every Monday at 04:00 UTC: the weekly rollups of the week (Monday..Sunday) that just ended.
WEEKLY_CRON = "0 4 * * 1"
# On the 1st of every month at 05:00 UTC: the monthly rollups of the month that just ended.
MONTHLY_CRON = "0 5 1 * *"
# Every day at 06:00 UTC: yesterday's daily partitions must be materialised by then.
FRESHNESS_DEADLINE_HOUR_UTC = 6
FRESHNESS_DEADLINE_CRON = f"0 {FRESHNESS_DEADLINE_HOUR_UTC} * * *"


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` through ``last``, both included (none if ``last`` < ``first``)."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def previous_day(at: datetime) -> date:
    """The day the daily run at ``at`` builds: the UTC day before."""
    return _utc_date(at) - timedelta(days=1)


def previous_week_start(at: datetime) -> date:
    """The Monday of the last complete Monday..Sunday week before ``at``."""
    today = _utc_date(at)
    this_monday = today - timedelta(days=today.weekday())
    return this_monday - timedelta(days=7)


def previous_month_start(at: datetime) -> date:
    """The 1st of the last complete month before ``at``."""
    first_of_this = _utc_date(at).replace(day=1)
    return (first_of_this - timedelta(days=1)).replace(day=1)


def daily_run_due(day: date, now: datetime) -> bool:
    """Whether the daily schedule's run for ``day`` should have happened by ``now``."""
    due_at = datetime.combine(day + timedelta(days=1), time(DAILY_HOUR_UTC), tzinfo=UTC)
    return now >= due_at


def freshness_expected_day(now: datetime) -> date:
    """The partition the freshness checks expect at ``now``: the day before the latest 06:00
    UTC deadline (before 06:00, the day before yesterday)."""
    today = _utc_date(now)
    deadline = datetime.combine(today, time(FRESHNESS_DEADLINE_HOUR_UTC), tzinfo=UTC)
    return today - timedelta(days=1 if now >= deadline else 2)


def _utc_date(at: datetime) -> date:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no time zone: pass an aware datetime")
    return at.astimezone(UTC).date()
