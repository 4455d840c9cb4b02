"""The contracts asset: every violation of a day, and the rates the checks gate on."""

from datetime import date

import dagster as dg

from pipelines.defs.ingest.assets import arrow_table_schema
from pipelines.defs.job_checks import without_watched_checks
from pipelines.defs.keys import CONTRACTS, CONTRACTS_GROUP, OWNERS, QUARANTINE
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import (
    ContractsResource,
    DuckDBSettings,
    LakeResource,
    lake_on_s3,
)
from pipelines.lib.contracts.rules import CHAIN_TYPES
from pipelines.lib.contracts.run import QUALITY_SCHEMA, VIOLATIONS_SCHEMA, run_contracts
from pipelines.lib.schemas.registry import event_types

# Joins near midnight look at the neighbouring days, where they exist.
_NEIGHBOURS = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
)


def _deps() -> list[dg.AssetDep]:
    return [
        dg.AssetDep(t, partition_mapping=_NEIGHBOURS if t in CHAIN_TYPES else None)
        for t in event_types()
    ] + [dg.AssetDep(QUARANTINE)]


def build_contracts_asset(
    partitions_def: dg.PartitionsDefinition, on_s3: bool = False
) -> dg.AssetsDefinition:
    @dg.asset(
        name=CONTRACTS,
        deps=_deps(),
        partitions_def=partitions_def,
        group_name=CONTRACTS_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "parquet", "great_expectations", *(["s3"] if on_s3 else [])},
        pool="contracts",
        description="Every violation of the day's join and data-quality contracts, one row each "
        "(contracts/event_date=D/), and each rule's rate (quality/event_date=D/). Observes only: "
        "events are never changed.",
        metadata={
            "dagster/column_schema": arrow_table_schema(VIOLATIONS_SCHEMA),
            "quality_table_schema": arrow_table_schema(QUALITY_SCHEMA),
        },
    )
    def contracts(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        contracts: ContractsResource,
        duckdb: DuckDBSettings,
    ) -> dg.MaterializeResult:
        day = date.fromisoformat(context.partition_key)
        target = lake.lake()
        with lake.partition_lease(
            target, "contracts", context.partition_key, context.run.run_id, context.log.info
        ):
            result = run_contracts(
                target,
                day,
                contracts.thresholds(),
                memory_limit=duckdb.memory_limit,
                threads=duckdb.threads,
            )
        metadata = {
            "dagster/row_count": result.violations,
            **{f"{f}_rate": round(r["rate"], 6) for f, r in result.rates.items()},
            **{f"{f}_failed": r["failed"] for f, r in result.rates.items()},
            "previous_day_ingested": result.neighbours["previous_day"],
            "next_day_ingested": result.neighbours["next_day"],
            "pending_next_day": result.pending_next_day,
            "seconds": round(result.seconds, 3),
            **{f"bytes_written_{k}": v for k, v in result.bytes_written.items()},
        }
        if result.data_docs:
            metadata["data_docs"] = dg.MetadataValue.path(result.data_docs)
        return dg.MaterializeResult(metadata=metadata)

    return contracts


@dg.definitions
def defs() -> dg.Definitions:
    contracts = build_contracts_asset(daily_partitions(), on_s3=lake_on_s3())
    return dg.Definitions(
        assets=dg.with_source_code_references([contracts]),
        jobs=[
            dg.define_asset_job(
                "contracts_daily",
                selection=without_watched_checks(dg.AssetSelection.groups(CONTRACTS_GROUP)),
                description="Check one day's contracts (joins over D-1..D+1, GX suites, "
                "timeliness) once D and, ideally, D+1 are ingested; the four family checks "
                "gate what depends on the day.",
            )
        ],
    )
