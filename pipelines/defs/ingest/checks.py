"""The ledger check: a blocking gate proving every landing line of the day is accounted for."""

from datetime import date

import dagster as dg

from pipelines.defs.ingest.assets import LEDGER
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LakeResource
from pipelines.lib.ledger import audit_ledger

LEDGER_BALANCES = "ledger_balances"


def build_ledger_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=LEDGER,
        name=LEDGER_BALANCES,
        blocking=True,
        partitions_def=partitions_def,
        description="Per landing file: lines taken = rows + quarantined + duplicates; published "
        "files hold what the ledger says; once all four partitions reading a file exist, their "
        "lines add up to the file's.",
    )
    def ledger_balances(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        audit = audit_ledger(lake.lake(), date.fromisoformat(context.partition_key))
        return dg.AssetCheckResult(passed=audit.passed, metadata=audit.metadata())

    return ledger_balances


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[build_ledger_check(daily_partitions())])
