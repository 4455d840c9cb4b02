"""The sensor that completes a day's publish cut short (lib/lake/publish.py) and reports it.

Ingest, contracts and rollups complete such a publish themselves before they read the day; this
sensor does it without waiting for one of them, so analysts reading the lake directly never find
a day half new, half old for long. A journal whose publisher still holds the day's ingest lease is
left to it (a live run finishing its swaps); a dead publisher's journal is rolled forward and an
observation of the ledger asset for that partition says what was done.
"""

from datetime import date

import dagster as dg

from pipelines.defs.keys import LEDGER
from pipelines.defs.resources import LakeResource
from pipelines.lib.lake.lease import LeaseHeldError
from pipelines.lib.lake.publish import pending_days, recover_pending

DAY_PUBLISH_RECOVERY = "day_publish_recovery"


def _observation(day: date, metadata: dict[str, str]) -> dg.AssetObservation:
    return dg.AssetObservation(LEDGER, partition=day.isoformat(), metadata=metadata)


def build_recovery_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=DAY_PUBLISH_RECOVERY,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Looks for publish journals in _publish/ (a day whose seven tables were being "
        "swapped in when its run died) and rolls each forward under the day's ingest lease, "
        "skipping a day whose publisher still holds it; records an observation of the ledger "
        "partition naming the tables it completed.",
    )
    def day_publish_recovery(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult:
        target = lake.lake()
        events = []
        for day in pending_days(target):
            try:
                # No wait: a sensor tick must stay short; a live publisher finishes by itself.
                recoveries = recover_pending(target, [day], wait_s=0, log=context.log.info)
            except LeaseHeldError as exc:
                context.log.info(f"{day}: publish in progress, left to its run: {exc}")
                continue
            events += [
                _observation(
                    r.day,
                    {
                        "publish_id": r.publish_id,
                        "rolled_forward": ", ".join(r.rolled_forward) or "none",
                        "already_applied": ", ".join(r.already_applied) or "none",
                        "summary": r.describe(),
                    },
                )
                for r in recoveries
            ]
        return dg.SensorResult(asset_events=events)

    return day_publish_recovery


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[build_recovery_sensor()])
