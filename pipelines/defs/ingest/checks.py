"""The ledger checks: a blocking gate proving every landing line of the day is accounted for, and a
warning naming the landing files that were not read whole (or not as their name says)."""

from collections.abc import Callable
from datetime import date

import dagster as dg

from pipelines.defs.keys import LEDGER
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LakeResource
from pipelines.lib.ingest.ledger import LedgerAudit, audit_ledger

LEDGER_BALANCES = "ledger_balances"
LANDING_FILES_READ = "landing_files_read"


def _ledger_check(
    partitions_def: dg.PartitionsDefinition,
    name: str,
    blocking: bool,
    description: str,
    judge: Callable[[LedgerAudit], dg.AssetCheckResult],
) -> dg.AssetChecksDefinition:
    """A check of the partition's ledger: both checks read the same audit and judge a different
    part of it."""

    @dg.asset_check(
        asset=LEDGER,
        name=name,
        blocking=blocking,
        partitions_def=partitions_def,
        description=description,
    )
    def ledger_check(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        return judge(audit_ledger(lake.lake(), date.fromisoformat(context.partition_key)))

    return ledger_check


def build_ledger_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    return _ledger_check(
        partitions_def,
        LEDGER_BALANCES,
        blocking=True,
        description="Per landing file: lines taken = rows + quarantined + duplicates; published "
        "files hold what the ledger says; once all four partitions reading a file exist, their "
        "lines add up to the file's.",
        judge=lambda audit: dg.AssetCheckResult(passed=audit.passed, metadata=audit.metadata()),
    )


def build_files_read_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    return _ledger_check(
        partitions_def,
        LANDING_FILES_READ,
        blocking=False,
        description="Warns (WARN) when a landing file the day reads has a `file_errors` note in "
        "the ledger: not read (a symlink leading out of landing/, not a regular file), not read "
        "whole (permission denied, a corrupt or cut gzip: its missing lines cannot be counted), "
        "or not what its name says (gzip or not). Fix the file, then re-run the four partitions "
        "that read it.",
        judge=lambda audit: dg.AssetCheckResult(
            passed=not audit.file_errors,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=audit.file_errors_metadata(),
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        asset_checks=[build_ledger_check(partitions), build_files_read_check(partitions)]
    )
