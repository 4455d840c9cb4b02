"""Rollup assets, one per model in ``lib/rollups/run.py``: daily ones wait for the day's contracts
(whose blocking checks stop them on a bad day), weekly and monthly ones depend on exactly their
days, so re-materialising one late day marks exactly its week and month stale (and the automation
sensor rebuilds them, ``pipelines/defs/automation/conditions.py``)."""

from datetime import date
from functools import cache

import dagster as dg

from pipelines.defs.job_checks import without_watched_checks
from pipelines.defs.keys import CONTRACTS, OWNERS, ROLLUPS_GROUP
from pipelines.defs.partitions import daily_partitions, monthly_partitions, weekly_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, RollupsResource, lake_on_s3
from pipelines.lib.rollups.columns import rollup_columns
from pipelines.lib.rollups.run import DAY, MODELS, MONTH, WEEK, Model, build_rollup
from pipelines.lib.schemas.registry import event_types

# The job that builds one period's rollups, per grain: run by the schedules, the demo and the UI.
# The rebuild of a week or month whose days changed is their automated twin's, in
# ``pipelines/defs/automation/conditions.py``.
ROLLUP_JOBS = {DAY: "rollups_daily", WEEK: "rollups_weekly", MONTH: "rollups_monthly"}


def _deps(model: Model) -> list[dg.AssetDep]:
    # Identity for days; a week or month maps to exactly its days.
    mapping = None if model.grain == DAY else dg.TimeWindowPartitionMapping()
    upstream = [*event_types(), *dict.fromkeys([CONTRACTS, *model.reads])]
    return [dg.AssetDep(name, partition_mapping=mapping) for name in upstream]


def column_schema(model: Model) -> dg.TableSchema:
    """The rollup's columns as docs/contracts/rollups.md lists them (same order, types and
    definitions, from its generated JSON twin), for the UI's column schema."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c["name"], type=c["type"], description=c["description"])
            for c in rollup_columns()[model.name]
        ]
    )


def build_rollup_asset(
    model: Model, partitions_def: dg.PartitionsDefinition, on_s3: bool = False
) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        deps=_deps(model),
        partitions_def=partitions_def,
        group_name=ROLLUPS_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "parquet", *(["s3"] if on_s3 else [])},
        pool="rollups",
        description=f"{model.description} rollups/{model.name}/ (sql/rollups/{model.sql})",
        metadata={"dagster/column_schema": column_schema(model)},
    )
    def rollup(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        rollups: RollupsResource,
        duckdb: DuckDBSettings,
    ) -> dg.MaterializeResult:
        target = lake.lake()
        with lake.partition_lease(
            target,
            f"rollups/{model.name}",
            context.partition_key,
            context.run.run_id,
            context.log.info,
        ):
            result = build_rollup(
                target,
                model,
                date.fromisoformat(context.partition_key),
                rollups.settings(duckdb),
            )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows,
                "period": f"{result.start}..{result.end}",
                "path": result.path,
                "bytes_written": result.bytes_written,
                "seconds": round(result.seconds, 3),
            }
        )

    return rollup


def rollups_selection(grain: str) -> dg.AssetSelection:
    """One grain's rollups, with the checks a build runs (not the watched ones)."""
    return without_watched_checks(
        dg.AssetSelection.assets(*[m.name for m in MODELS if m.grain == grain])
    )


@cache
def rollup_job(grain: str):
    """One grain's build job. Cached: the schedules target this very object (Dagster refuses two
    job definitions of one name), so they name the job by object, not by string."""
    name = ROLLUP_JOBS[grain]
    return dg.define_asset_job(
        name,
        selection=rollups_selection(grain),
        description=f"Build the {name.removeprefix('rollups_')} rollups of one {grain}.",
    )


@dg.definitions
def defs() -> dg.Definitions:
    partitions = {DAY: daily_partitions(), WEEK: weekly_partitions(), MONTH: monthly_partitions()}
    on_s3 = lake_on_s3()
    assets = [build_rollup_asset(m, partitions[m.grain], on_s3) for m in MODELS]
    jobs = [rollup_job(grain) for grain in ROLLUP_JOBS]
    return dg.Definitions(assets=dg.with_source_code_references(assets), jobs=jobs)
