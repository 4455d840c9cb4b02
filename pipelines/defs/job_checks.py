"""Which checks a job that builds a day runs: its gates, not the checks that other machinery
evaluates (freshness, by its sensor against the clock; compaction's proof, recorded by the compact
job). Run after an ingest they would say nothing about that run.

Here rather than in ``ops/``: the stages' asset modules use it, and ``ops/`` (the automation)
imports those modules; inside ``ops/`` it would make the packages import each other."""

import dagster as dg

from pipelines.defs.keys import COMPACTION_PRESERVED_ROWS, FRESHNESS_CHECK, daily_asset_keys
from pipelines.lib.schemas.registry import event_types


def without_watched_checks(selection: dg.AssetSelection) -> dg.AssetSelection:
    watched = [dg.AssetCheckKey(key, FRESHNESS_CHECK) for key in daily_asset_keys()]
    watched += [dg.AssetCheckKey(dg.AssetKey(t), COMPACTION_PRESERVED_ROWS) for t in event_types()]
    return selection - dg.AssetSelection.checks(*watched)
