"""Time partitions, defined once. The first date is configuration (TELEMETRY_FIRST_DATE, default
2025-01-01) so a team can backfill any history; it is read when definitions load. Weeks start on
Monday and months on the 1st, in UTC; a week or month holds exactly its days."""

import dagster as dg

from pipelines.defs.resources import first_partition as _first_date


def daily_partitions() -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=_first_date().isoformat(), timezone="UTC")


def weekly_partitions() -> dg.WeeklyPartitionsDefinition:
    # day_offset=1: Dagster's weeks otherwise start on Sunday.
    return dg.WeeklyPartitionsDefinition(
        start_date=_first_date().isoformat(), day_offset=1, timezone="UTC"
    )


def monthly_partitions() -> dg.MonthlyPartitionsDefinition:
    return dg.MonthlyPartitionsDefinition(start_date=_first_date().isoformat(), timezone="UTC")
