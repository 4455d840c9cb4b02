"""The demo: a week of sample telemetry through every asset, into a local lake under data/.

    python -m pipelines.demo

Generates the week 2025-06-02 .. 2025-06-08 into TELEMETRY_LAKE_ROOT (default data/lake),
materialises every asset and check in this project's Dagster instance (so `dagster dev` shows
the runs): first the ingest of every day the landing files touch, then each day's contracts
(which read the neighbouring days). Prints rows per event type, quarantine counts and the
contract families' rates per day.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from datetime import date

import duckdb

from pipelines.lib.contracts.rules import FAMILIES
from pipelines.lib.paths import PROJECT_ROOT, default_lake_root
from pipelines.lib.progress import Progress
from pipelines.lib.sample import SampleConfig, generate
from pipelines.lib.sql import load_sql

DEMO_START = date(2025, 6, 2)
DEMO_DAYS = 7


def _table(title: str, rows: list[tuple], column_names: list[str]) -> str:
    by_day: dict[date, dict[str, object]] = defaultdict(dict)
    for day, name, count in rows:
        by_day[day][name] = count
    widths = [
        10,
        *[max(len(c), 7, *(len(str(v.get(c, 0))) for v in by_day.values())) for c in column_names],
    ]
    header = "  ".join(
        h.rjust(w) for h, w in zip(["event_date", *column_names], widths, strict=True)
    )
    lines = [title, header, "-" * len(header)]
    for day in sorted(by_day):
        cells = [str(day), *[str(by_day[day].get(c, 0)) for c in column_names]]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    root = os.environ.get("TELEMETRY_LAKE_ROOT") or default_lake_root()
    if "://" not in root:
        os.makedirs(root, exist_ok=True)

    # Imported here: loading definitions reads the environment set above.
    import dagster as dg

    from pipelines.definitions import defs

    config = SampleConfig(start=DEMO_START, days=DEMO_DAYS)
    print(f"Generating {DEMO_DAYS} days of sample events into {root}/landing ...", file=sys.stderr)
    with Progress(None, "sample", "events") as progress:
        manifest = generate(config, root, on_progress=progress.advance)
    print(f"  {len(manifest['files'])} landing files written", file=sys.stderr)

    instance = dg.DagsterInstance.get()
    # Every partition the landing files touch: late lines are quarantined on later days.
    days = sorted(date.fromisoformat(d) for d in manifest["partitions"])
    passes = [dg.AssetSelection.groups(g) for g in ("ingest", "contracts")]
    with Progress(len(days) * len(passes), "materialise", "partitions") as progress:
        for selection in passes:
            for day in days:
                result = dg.materialize(
                    [*defs.assets, *defs.asset_checks],
                    selection=selection,
                    resources=defs.resources,
                    partition_key=day.isoformat(),
                    instance=instance,
                    raise_on_error=False,
                    # Warnings (such as the development-key one) still show; the rest is in the UI.
                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                )
                if not result.success:
                    print(f"{day} failed; see `dagster dev` for the run", file=sys.stderr)
                    return 1
                progress.advance(1)

    con = duckdb.connect()
    rows = con.execute(
        load_sql("reports/rows_by_type.sql"),
        {"events_glob": f"{root}/events/*/*/*.parquet"},
    ).fetchall()
    quarantined = con.execute(
        load_sql("reports/quarantine_by_reason.sql"),
        {"quarantine_glob": f"{root}/quarantine/*/*.parquet"},
    ).fetchall()
    rates = con.execute(
        load_sql("reports/contract_rates.sql"),
        {"quality_glob": f"{root}/quality/*/*.parquet"},
    ).fetchall()
    types = sorted({r[1] for r in rows})
    reasons = sorted({r[1] for r in quarantined})
    print(_table("Rows per event type", rows, types))
    print()
    print(_table("Quarantined lines by reason", quarantined, reasons))
    print()
    print(_table("Contracts: share of events that hold (events that broke)", rates, FAMILIES))
    print(f"\nLake: {root}   Browse it: DAGSTER_HOME={PROJECT_ROOT} dagster dev")
    return 0


if __name__ == "__main__":
    sys.exit(main())
