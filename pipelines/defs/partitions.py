"""Time partitions, defined once. The first date is configuration (TELEMETRY_FIRST_DATE, default
2025-01-01) so a team can backfill any history; it is read when definitions load."""

import os

import dagster as dg

from pipelines.lib.settings import first_partition_date


def daily_partitions() -> dg.DailyPartitionsDefinition:
    start = first_partition_date(os.environ.get("TELEMETRY_FIRST_DATE"))
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC")
