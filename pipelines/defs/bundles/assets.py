"""The monthly partner bundle: the viewer tier's rollups of one month, small cells withheld,
published as ``bundles/YYYY-MM/`` with a manifest and checksums
(``lib/bundles/partner_bundle.py``), checked by
``python -m pipelines.verify_bundle``. It depends on exactly the rollup partitions it packages:
the month's days, the weeks with a day in the month, and the month. Built once they all exist and
rebuilt when one changes, by the automation sensor's job ``partner_bundle_automated``
(``pipelines/defs/automation/conditions.py``)."""

from datetime import date

import dagster as dg

from pipelines.defs.keys import BUNDLES_GROUP, OWNERS, PARTNER_BUNDLE
from pipelines.defs.partitions import daily_partitions, monthly_partitions
from pipelines.defs.resources import CatalogResource, DuckDBSettings, LakeResource, lake_on_s3
from pipelines.lib.bundles.partner_bundle import build_bundle
from pipelines.lib.catalog.tiers import USER_COUNT_COLUMNS
from pipelines.lib.rollups.run import MODELS, MONTH


def _deps() -> list[dg.AssetDep]:
    # Days and weeks: the ones overlapping the month (a week across the month's first or last
    # day included); before the first partition date there are none, which is not an error.
    spread = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
    return [
        dg.AssetDep(m.name, partition_mapping=None if m.grain == MONTH else spread)
        for m in MODELS
        if m.name in USER_COUNT_COLUMNS
    ]


def build_partner_bundle_asset(on_s3: bool = False) -> dg.AssetsDefinition:
    @dg.asset(
        name=PARTNER_BUNDLE,
        deps=_deps(),
        partitions_def=monthly_partitions(),
        group_name=BUNDLES_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "parquet", *(["s3"] if on_s3 else [])},
        description="The viewer tier's rollups of one month for partners: one Parquet file per "
        "rollup with a user count (rows covering fewer than k users withheld), manifest.json "
        "(rows, schema, SHA-256 per file) and SHA256SUMS, published as bundles/YYYY-MM/. "
        "Check a copy with `python -m pipelines.verify_bundle <folder or s3 url>`.",
    )
    def partner_bundle(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        catalog: CatalogResource,
        duckdb: DuckDBSettings,
    ) -> dg.MaterializeResult:
        result = build_bundle(
            lake.lake(),
            date.fromisoformat(context.partition_key),
            viewer_min_users=catalog.min_users(),
            first_date=daily_partitions().start.date(),
            memory_limit=duckdb.memory_limit,
            threads=duckdb.threads,
        )
        return dg.MaterializeResult(
            metadata={
                "path": result.path,
                "dagster/row_count": result.rows,
                "rows_withheld": result.rows_withheld,
                "viewer_min_users": catalog.min_users(),
                "files": dg.MetadataValue.json(
                    {f.name: {"rows": f.rows, "sha256": f.sha256} for f in result.files}
                ),
                "seconds": round(result.seconds, 3),
            }
        )

    return partner_bundle


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.with_source_code_references([build_partner_bundle_asset(lake_on_s3())])
    )
