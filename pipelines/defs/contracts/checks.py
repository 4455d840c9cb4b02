"""One blocking check per data-quality family: under ``error_below`` the day fails and its
rollups do not build; under ``warn_below`` it warns. Rates come from the contracts asset's
quality table, so a check re-run costs a Parquet read."""

from datetime import date

import dagster as dg

from pipelines.defs.keys import CONTRACTS
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import ContractsResource, LakeResource
from pipelines.lib.contracts.rules import COMPLETENESS, CONSISTENCY, TIMELINESS, VALIDITY
from pipelines.lib.contracts.run import neighbours_ingested
from pipelines.lib.contracts.summary import family_summary
from pipelines.lib.contracts.verdict import ERROR, PASS, verdict
from pipelines.lib.lake.paths import DATA_DOCS_DIR

_DESCRIPTIONS = {
    COMPLETENESS: "Share of the day's events with every required field present (GX suites); "
    "optional fields' presence is reported, not gated.",
    CONSISTENCY: "Share of the day's request, ranking, impression and click events that break "
    "no join or agreement rule (sql/contracts/consistency.sql, over D-1..D+1).",
    VALIDITY: "Share of the day's events whose values are valid: UUID v4 request ids, 64-hex "
    "hashed ids, enums, ranges, lengths, timestamps within the day (GX suites).",
    TIMELINESS: "Share of the day's events that landed within the ingest window (by T+2); "
    "on-date and T+1 shares are reported.",
}


def build_family_check(
    family: str, partitions_def: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=CONTRACTS,
        name=family,
        blocking=True,
        partitions_def=partitions_def,
        description=_DESCRIPTIONS[family],
    )
    def family_check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, contracts: ContractsResource
    ) -> dg.AssetCheckResult:
        the_lake = lake.lake()
        day = date.fromisoformat(context.partition_key)
        summary = family_summary(the_lake, day, family)
        thresholds = contracts.thresholds()
        outcome = verdict(summary.rate, thresholds)
        context_metadata = {}
        if family == CONSISTENCY:
            # The joins look at D-1 and D+1: say when a neighbour was not there to look at.
            ingested = neighbours_ingested(the_lake, day)
            context_metadata = {f"{label}_ingested": v for label, v in ingested.items()}
        return dg.AssetCheckResult(
            passed=outcome == PASS,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome == ERROR
            else dg.AssetCheckSeverity.WARN,
            metadata={
                "rate": summary.rate,
                "checked": summary.checked,
                "failed": summary.failed,
                "error_below": thresholds.error_below,
                "warn_below": thresholds.warn_below,
                "rules": dg.MetadataValue.json(summary.rules),
                "sample_offenders": dg.MetadataValue.json(summary.sample),
                "data_docs": dg.MetadataValue.path(the_lake.url(f"{DATA_DOCS_DIR}/index.html")),
                **context_metadata,
            },
        )

    return family_check


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        asset_checks=[
            build_family_check(f, partitions)
            for f in (COMPLETENESS, CONSISTENCY, VALIDITY, TIMELINESS)
        ]
    )
