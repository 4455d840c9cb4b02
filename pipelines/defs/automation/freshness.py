"""Freshness: every daily asset must have yesterday's partition by 06:00 UTC. A failing check
says which partition is missing ("We expected partition 2025-06-02 to have arrived"). The
freshness sensor runs these checks; jobs leave them out (``pipelines/defs/job_checks.py``)."""

import dagster as dg

from pipelines.defs.keys import daily_asset_keys
from pipelines.lib.lake.calendar import FRESHNESS_DEADLINE_CRON

# The checks alone, as a named job: the demo evaluates them after its last build, so that `dg dev`
# shows them as they are rather than their sensor's first run.
FRESHNESS_JOB = "freshness_checks"


@dg.definitions
def defs() -> dg.Definitions:
    checks = dg.build_time_partition_freshness_checks(
        assets=daily_asset_keys(),
        deadline_cron=FRESHNESS_DEADLINE_CRON,
        timezone="UTC",
        severity=dg.AssetCheckSeverity.ERROR,
    )
    return dg.Definitions(
        asset_checks=checks,
        jobs=[
            dg.define_asset_job(
                FRESHNESS_JOB,
                selection=dg.AssetSelection.checks(*checks),
                description="Evaluate every daily asset's freshness check now (the "
                "freshness_checks_sensor does it when one can have become overdue).",
            )
        ],
        sensors=[
            dg.build_sensor_for_freshness_checks(
                freshness_checks=checks,
                name="freshness_checks_sensor",
                default_status=dg.DefaultSensorStatus.RUNNING,
            )
        ],
    )
