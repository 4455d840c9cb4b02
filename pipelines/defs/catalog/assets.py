"""The catalog asset: one DuckDB file of views over the lake per access tier (see the README's
"For analysts" section and docs/access_tiers.md): ``data/lake.duckdb`` for engineers,
``lake.analyst.duckdb`` and ``lake.viewer.duckdb`` beside it. Views re-read their files on every
query, so the catalogs are rewritten only when the set of tables changes; the code_version
hashes every tier's views."""

import dagster as dg

from pipelines.defs.keys import CATALOG, CATALOG_GROUP, OWNERS
from pipelines.defs.resources import CatalogResource, LakeResource
from pipelines.lib.catalog.views import catalog_version, write_tier_catalogs

# A named job for a rebuild on purpose (the demo, the UI); the automation sensor's runs are its
# twin's, refresh_catalog_automated (pipelines/defs/automation/conditions.py): when the catalogs are
# missing, when the code_version below changes, and daily.
CATALOG_JOB = "refresh_catalog"


def build_catalog_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=CATALOG,
        group_name=CATALOG_GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        # Changes exactly when a view is added, removed, re-pointed or a tier's rule changes
        # (event schemas, MODELS, lib/catalog/tiers.py).
        code_version=catalog_version(),
        description="DuckDB files of views, one per access tier: engineer (every table and "
        "column), analyst (no free text, no key ids, no quarantined raw text) and viewer "
        "(rollups with a user count, rows below k users withheld), over the lake's Parquet "
        "(absolute paths or s3:// URLs). A table with no files yet gets no view until the next "
        "materialisation. Open them with `duckdb -readonly`.",
    )
    def catalog_file(
        context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource
    ) -> dg.MaterializeResult:
        results = write_tier_catalogs(
            lake.lake(),
            catalog.catalog_path(),
            tier_names=catalog.tier_names(),
            viewer_min_users=catalog.min_users(),
            log=context.log.info,
        )
        first = next(iter(results.values()))
        return dg.MaterializeResult(
            metadata={
                # The engineer's file when written, else the first tier's.
                "path": dg.MetadataValue.path(first.path),
                "views_written": dg.MetadataValue.json(first.written),
                "views_skipped": dg.MetadataValue.json(first.skipped),
                "view_count": len(first.written),
                "tiers": dg.MetadataValue.json(
                    {
                        tier: {
                            "path": r.path,
                            "views": len(r.written),
                            "withheld": r.withheld,
                        }
                        for tier, r in results.items()
                    }
                ),
                "viewer_min_users": catalog.min_users(),
                "catalog_version": first.version,
                "seconds": round(sum(r.seconds for r in results.values()), 3),
            }
        )

    return catalog_file


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.with_source_code_references([build_catalog_asset()]),
        jobs=[
            dg.define_asset_job(
                CATALOG_JOB,
                selection=dg.AssetSelection.assets(CATALOG),
                description="Rewrite the analysts' catalog files (one per access tier).",
            )
        ],
    )
