"""The catalog asset: ``data/lake.duckdb``, one view per lake table for analysts (see the
README's "For analysts" section). Views re-read their files on every query, so the catalog is
rewritten only when the set of tables changes; its code_version hashes that set."""

import os

import dagster as dg

from pipelines.defs.ingest.assets import OWNERS
from pipelines.defs.resources import LakeResource, env_var
from pipelines.lib.catalog import catalog_version, write_catalog
from pipelines.lib.paths import default_catalog_path

CATALOG = "catalog"


class CatalogResource(dg.ConfigurableResource):
    """Where the analysts' catalog is written: a local file (default ``data/lake.duckdb``), also
    when the lake itself is on S3."""

    path: str | None = None

    def catalog_path(self) -> str:
        return os.path.abspath((self.path or "").strip() or default_catalog_path())


def build_catalog_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=CATALOG,
        group_name="catalog",
        owners=OWNERS,
        kinds={"duckdb"},
        # Changes exactly when a view is added, removed or re-pointed (event schemas, MODELS).
        code_version=catalog_version(),
        # Daily too: a table's first file (say the first monthly rollup) needs a rebuild to show.
        automation_condition=dg.AutomationCondition.on_missing()
        | dg.AutomationCondition.code_version_changed()
        | dg.AutomationCondition.on_cron("30 6 * * *"),
        description="A DuckDB file of views for analysts: events.<type>, rollups.<model>, "
        "quality.{contract_violations, contract_rates, ledger, quarantine}, over the lake's "
        "Parquet (absolute paths or s3:// URLs). A table with no files yet gets no view until "
        "the next materialisation. Open it with `duckdb -readonly`.",
    )
    def catalog_file(
        context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource
    ) -> dg.MaterializeResult:
        result = write_catalog(lake.lake(), catalog.catalog_path(), log=context.log.info)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(result.path),
                "views_written": dg.MetadataValue.json(result.written),
                "views_skipped": dg.MetadataValue.json(result.skipped),
                "view_count": len(result.written),
                "catalog_version": result.version,
                "seconds": round(result.seconds, 3),
            }
        )

    return catalog_file


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.with_source_code_references([build_catalog_asset()]),
        resources={"catalog": CatalogResource(path=env_var("TELEMETRY_CATALOG"))},
    )
