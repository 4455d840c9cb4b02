"""The sensor that evaluates every asset's automation condition (the catalog's, and the weekly and
monthly rollups' rebuild when one of their days changed). Declared here so it runs by default
rather than waiting for someone to switch on Dagster's implicit one."""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=60,
                description="Evaluates automation conditions: rebuilds a week or month whose "
                "days were re-materialised (late data), and the catalog when its views change.",
            )
        ]
    )
