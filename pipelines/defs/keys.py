"""The names the code location's parts refer each other by: asset keys, check names, owners and
group names. They live here, importing nothing of ``pipelines/defs/``, so that no module imports
an asset module for a name: that is what once made an import circle (ingest's assets imported the
job checks, which back-imported ingest's and the contracts' assets for their keys).

Job names stay beside their jobs: only the automation above the stages reads them."""

import dagster as dg

from pipelines.lib.rollups.run import DAY, MODELS
from pipelines.lib.schemas.registry import event_types

# Every asset's owner.
OWNERS = ["team:data-platform"]

# Asset keys. Each event type is an asset of its own name (``event_types()``), and each rollup
# model's name is its asset's key (``pipelines/lib/rollups/run.py``, MODELS).
QUARANTINE = "quarantine"
LEDGER = "ledger"
CONTRACTS = "contracts"
TRAFFIC_DAILY = "traffic_daily"
TRAFFIC_PARTS = "traffic_parts"
CATALOG = "catalog"
REPORT_DAILY = "report_daily"
REPORT_WEEKLY = "report_weekly"
PARTNER_BUNDLE = "partner_bundle"

# Group names: one per stage, as the UI lists them.
INGEST_GROUP = "ingest"
CONTRACTS_GROUP = "contracts"
ROLLUPS_GROUP = "rollups"
CATALOG_GROUP = "catalog"
REPORTS_GROUP = "reports"
BUNDLES_GROUP = "bundles"

# Checks that other machinery evaluates, which the jobs that build a day leave out
# (``pipelines/defs/job_checks.py``). FRESHNESS_CHECK is the name Dagster gives every check built
# by build_time_partition_freshness_checks (``pipelines/defs/automation/freshness.py``).
FRESHNESS_CHECK = "freshness_check"
COMPACTION_PRESERVED_ROWS = "compaction_preserved_rows"


def daily_asset_keys() -> list[dg.AssetKey]:
    """Every daily-partitioned asset: the event tables, quarantine, ledger, contracts and the
    daily rollups."""
    names = [*event_types(), QUARANTINE, LEDGER, CONTRACTS]
    names += [m.name for m in MODELS if m.grain == DAY]
    return [dg.AssetKey(name) for name in names]
