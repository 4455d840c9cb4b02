"""The catalog asset: one DuckDB file of views over the lake per access tier (see the README's
"For analysts" section and docs/access_tiers.md): ``data/lake.duckdb`` for engineers,
``lake.analyst.duckdb`` and ``lake.viewer.duckdb`` beside it. Views re-read their files on every
query, so the catalogs are rewritten only when the set of tables changes; the code_version
hashes every tier's views."""

import os

import dagster as dg

from pipelines.defs.ingest.assets import OWNERS
from pipelines.defs.resources import LakeResource, env_var
from pipelines.lib import paths
from pipelines.lib import tiers as access_tiers
from pipelines.lib.catalog import catalog_version, write_tier_catalogs

CATALOG = "catalog"
# A named job for a rebuild on purpose (the demo, the UI); the automation sensor's runs are its
# twin's, refresh_catalog_automated (pipelines/defs/ops/automation.py): when the catalogs are
# missing, when the code_version below changes, and daily.
CATALOG_JOB = "refresh_catalog"


class CatalogResource(dg.ConfigurableResource):
    """Where the catalogs are written and which tiers: ``path`` is the engineer's file (default
    ``data/lake.duckdb``, a local file also when the lake is on S3), the other tiers' files sit
    beside it. ``tiers`` is a comma-separated subset of engineer, analyst, viewer (default all);
    ``viewer_min_users`` is k: the viewer tier and the partner bundles withhold every rollup row
    covering fewer users."""

    path: str | None = None
    tiers: str | None = None
    viewer_min_users: int = access_tiers.DEFAULT_VIEWER_MIN_USERS

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail the run before anything is written, naming the variable to set.
        self.tier_names()
        self.min_users()

    def catalog_path(self) -> str:
        return paths.catalog_path(self.path)

    def tier_names(self) -> tuple[str, ...]:
        return access_tiers.parse_tiers(self.tiers, source="TELEMETRY_CATALOG_TIERS")

    def min_users(self) -> int:
        return access_tiers.check_min_users(
            self.viewer_min_users, source="TELEMETRY_VIEWER_MIN_USERS"
        )

    def tier_path(self, tier: str) -> str:
        return access_tiers.tier_path(self.catalog_path(), tier)


def build_catalog_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=CATALOG,
        group_name="catalog",
        owners=OWNERS,
        kinds={"duckdb"},
        # Changes exactly when a view is added, removed, re-pointed or a tier's rule changes
        # (event schemas, MODELS, lib/tiers.py).
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


def catalog_resource() -> CatalogResource:
    """The catalog resource from the environment (read when definitions load)."""
    k = os.environ.get("TELEMETRY_VIEWER_MIN_USERS")
    return CatalogResource(
        path=env_var("TELEMETRY_CATALOG"),
        tiers=env_var("TELEMETRY_CATALOG_TIERS"),
        viewer_min_users=dg.EnvVar.int("TELEMETRY_VIEWER_MIN_USERS")
        if k
        else access_tiers.DEFAULT_VIEWER_MIN_USERS,
    )


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
        resources={"catalog": catalog_resource()},
    )
