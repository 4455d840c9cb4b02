"""Render docs/contracts/rollups.md from the rollup models, their column definitions and the
schemas the SQL really produces (run on an empty month, so the types are the stored ones), and
its machine-readable twin docs/contracts/rollups.columns.json: the same columns, types and
definitions, which the rollup assets load as their Dagster column schema. Running the SQL takes
seconds, too slow for every definitions load, hence a generated file rather than a live run."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.docs import markdown as md
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.paths import events_file, ledger_file, quarantine_file
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.columns import definition
from pipelines.lib.rollups.run import (
    DAY,
    GRAIN_KEYS,
    MODELS,
    MONTH,
    Model,
    build_rollup,
    period,
    rollup_file,
)
from pipelines.lib.schemas.registry import event_types

ROLLUPS_PAGE = "contracts/rollups.md"
_MONTH = date(2025, 6, 1)  # any month: the lake is empty, only the column types matter


def output_schemas() -> dict[str, pa.Schema]:
    """Each model's output schema, from a real run over an empty month."""
    with tempfile.TemporaryDirectory(prefix="telemetry-rollup-docs-") as root:
        lake = Lake(root)
        ingest_partition(lake, _MONTH, PiiKey(pii.DEV_KEY), IngestSettings())
        daily = [m for m in MODELS if m.grain == DAY]
        schemas = {}
        for model in daily:
            result = build_rollup(lake, model, _MONTH)
            schemas[model.name] = pq.read_schema(lake.path(result.path))
        # Every day of the month looks like that empty first day: copy rather than rebuild.
        first, last = period(MONTH, _MONTH)
        days = [first + timedelta(days=n) for n in range(-1, (last - first).days + 1)]
        paths = [events_file(t, _MONTH) for t in event_types()]
        paths += [quarantine_file(_MONTH), ledger_file(_MONTH)]
        paths += [rollup_file(m.name, DAY, _MONTH) for m in daily]
        for day in days:
            for rel in paths:
                target = f"{root}/{rel.replace(_MONTH.isoformat(), day.isoformat())}"
                if target != f"{root}/{rel}":
                    lake.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                    shutil.copyfile(f"{root}/{rel}", target)
        for model in MODELS:
            if model.grain != DAY:
                start = _MONTH if model.grain == MONTH else date(2025, 6, 2)  # a Monday
                result = build_rollup(lake, model, start)
                schemas[model.name] = pq.read_schema(lake.path(result.path))
        return {m.name: schemas[m.name] for m in MODELS}


_INTRO = """\
# Rollups

{note}

Rollups are DuckDB SQL models under `sql/rollups/`, one per file, run by the rollup assets and
stored as Parquet at `rollups/<name>/<grain key>=<first day>/`, replaced atomically like the
events. A day is an `event_date` (UTC); a week runs Monday to Sunday (`week_start`); a month is a
calendar month (`month_start`). Daily rollups read the day's events and depend on the day's
`contracts`, whose blocking checks stop them on a bad day. Weekly and monthly traffic is merged
exactly from exactly their days: counts add up, while distinct counts, percentiles and means
are recomputed from `traffic_parts`, each day's distinct members and per-event values (never
from daily ratios, which do not add). Re-materialising one late day marks exactly its week and
month stale.

Events are attributed to the dimensions of their request (joined on `request_id`: the first
request of the event's day or the day before, for every grain, so a week's rows are the sum of
its days'). In the traffic rollups a null dimension means
"all" on the all-traffic row (`is_all_traffic` true) and "not known" on the row of events whose
request was not found (`is_unattributed` true: orphan clicks and impressions, errors without a
request). That row has clicks but no requests and, usually, no impressions.

Ratios are never `inf` or NaN: a ratio column is null where its denominator is 0 (the
unattributed row's `ctr`, `error_rate` and `impressions_per_request`; any row's `*_change`
without a previous period or where that was 0). To aggregate a ratio over rows, sum the parts
and divide once, keeping the unattributed row out of per-dimension totals and guarding the
denominator, since DuckDB's `/` returns `inf` for a division by 0:

```sql
select surface, sum(clicks) / nullif(sum(impressions), 0) as ctr
from rollups.traffic_daily
where not is_all_traffic and not is_unattributed
group by surface;
```

| rollup | grain | rows per period | SQL |
|---|---|---|---|
{summary}
"""


def columns_of(model: Model, schema: pa.Schema) -> list[dict[str, str]]:
    """The rollup's columns in file order: name, Arrow type, definition. One list for the page's
    table and for the JSON twin, so the two (and the assets' column schemas) cannot differ."""
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "description": definition(model, f.name) or "(undocumented)",
        }
        for f in schema
    ]


def _section(model: Model, schema: pa.Schema) -> str:
    sources = ["events (request, ranking, impression, click, error)", *model.reads]
    rows = [
        [md.code(c["name"]), md.code(c["type"]), c["description"]]
        for c in columns_of(model, schema)
    ]
    return "\n".join(
        [
            f"## `{model.name}`",
            "",
            model.description,
            "",
            f"- Path: `rollups/{model.name}/{GRAIN_KEYS[model.grain]}=YYYY-MM-DD/`",
            f"- Sources: {', '.join(sources)}",
            f"- Grain: one {model.grain}; rows: {model.rows}",
            "",
            md.table(["column", "type", "definition"], rows),
        ]
    )


def render_rollups(schemas: dict[str, pa.Schema] | None = None) -> str:
    schemas = schemas or output_schemas()
    summary = md.table(
        ["rollup", "grain", "rows per period", "SQL"],
        [[md.code(m.name), m.grain, m.rows, f"`sql/rollups/{m.sql}`"] for m in MODELS],
    )
    text = _INTRO.format(
        note=md.generated_note("`pipelines/lib/rollups/` and the SQL's real output"),
        summary="\n".join(summary.splitlines()[2:]),
    )
    sections = [_section(m, schemas[m.name]) for m in MODELS]
    return (text + "\n" + "\n\n".join(sections)).rstrip("\n") + "\n"


def render_rollup_columns(schemas: dict[str, pa.Schema] | None = None) -> str:
    schemas = schemas or output_schemas()
    document = {
        "_note": f"Generated by `{md.REGENERATE}` with {ROLLUPS_PAGE}; do not edit by hand.",
        "rollups": {m.name: columns_of(m, schemas[m.name]) for m in MODELS},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
