"""A code location for the concurrency test: the real ingest assets and nothing that acts on its
own (no schedules or sensors), so the daemon only dequeues the runs the test submits."""

import dagster as dg

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource

defs = dg.Definitions(
    assets=[build_ingest_assets(daily_partitions())],
    jobs=[dg.define_asset_job("ingest_only", selection=dg.AssetSelection.groups("ingest"))],
    resources={
        "lake": LakeResource(root=dg.EnvVar("TELEMETRY_LAKE_ROOT")),
        "pii": PiiResource(),
        "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
    },
)
