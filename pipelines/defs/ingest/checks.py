"""The ledger checks: a blocking gate proving every landing line of the day is accounted for, and a
warning naming the landing files that were not read whole (or not as their name says)."""

from datetime import date

import dagster as dg

from pipelines.defs.keys import LEDGER
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LakeResource
from pipelines.lib.ledger import audit_ledger

LEDGER_BALANCES = "ledger_balances"
LANDING_FILES_READ = "landing_files_read"


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


def build_files_read_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=LEDGER,
        name=LANDING_FILES_READ,
        blocking=False,
        partitions_def=partitions_def,
        description="Warns (WARN) when a landing file the day reads has a `file_errors` note in "
        "the ledger: not read (a symlink leading out of landing/, not a regular file), not read "
        "whole (permission denied, a corrupt or cut gzip: its missing lines cannot be counted), "
        "or not what its name says (gzip or not). Fix the file, then re-run the four partitions "
        "that read it.",
    )
    def landing_files_read(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        audit = audit_ledger(lake.lake(), date.fromisoformat(context.partition_key))
        return dg.AssetCheckResult(
            passed=not audit.file_errors,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=audit.file_errors_metadata(),
        )

    return landing_files_read


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        asset_checks=[build_ledger_check(partitions), build_files_read_check(partitions)]
    )
