"""Freshness: every daily asset must have yesterday's partition by 06:00 UTC. A failing check
says which partition is missing ("We expected partition 2025-06-02 to have arrived"). The
freshness sensor runs these checks; jobs leave them out (``job_checks.py``)."""

import dagster as dg

from pipelines.lib.ops.calendar import FRESHNESS_DEADLINE_CRON
from pipelines.lib.rollups.run import DAY, MODELS
from pipelines.lib.schemas import event_types

# The name Dagster gives every check built by build_time_partition_freshness_checks.
FRESHNESS_CHECK = "freshness_check"
# The checks alone, as a named job: the demo evaluates them after its last build, so that `dg dev`
# shows them as they are rather than their sensor's first run.
FRESHNESS_JOB = "freshness_checks"


def daily_asset_keys() -> list[dg.AssetKey]:
    # Imported here: the ingest and contracts modules import job_checks, which imports this.
    from pipelines.defs.contracts.assets import CONTRACTS
    from pipelines.defs.ingest.assets import LEDGER, QUARANTINE

    names = [*event_types(), QUARANTINE, LEDGER, CONTRACTS]
    names += [m.name for m in MODELS if m.grain == DAY]
    return [dg.AssetKey(name) for name in names]


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
