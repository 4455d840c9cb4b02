"""The demo: a week of sample telemetry through every asset, into a local lake under data/.

    python -m pipelines.demo

Generates the week 2025-06-02 .. 2025-06-08 into TELEMETRY_LAKE_ROOT (default data/lake),
materialises every asset and check in this project's Dagster instance (so `dagster dev` shows
the runs): first the ingest of every day the landing files touch, then each day's contracts
(which read the neighbouring days), the rollups, the operational reports and the catalog. Prints
rows per event type, quarantine counts, the contract families' rates per day and the weekly
experiment evaluation, and where the day's report is.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from datetime import date, timedelta

import duckdb

from pipelines.lib import settings
from pipelines.lib.contracts.rules import FAMILIES
from pipelines.lib.ops.calendar import days_between
from pipelines.lib.paths import (
    PROJECT_ROOT,
    daily_report_dir,
    default_catalog_path,
    default_lake_root,
)
from pipelines.lib.progress import Progress
from pipelines.lib.rollups.run import MODELS
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


def _rows(title: str, columns: list[str], rows: list[tuple]) -> str:
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([title, header, "-" * len(header), *body])


def _plan(touched: list[date]) -> list[tuple[str, list[str] | None, list[date | None]]]:
    """Runs in order, as (job, its assets to run or None for all, partition keys): the ingest of
    every day of the months the landing files touch (a month's rollup needs all its days), then
    each day's contracts with its daily rollups and their SLO checks (which read the neighbouring
    days, and which the contracts' blocking checks gate), then every complete week and month, the
    operational reports of the demo's days and of the complete weeks, then the analysts' catalog
    (unpartitioned: key None). Each run is one of the code location's named jobs, so the UI
    lists it under that job (not as an ad-hoc ``__ephemeral_asset_job__``)."""
    from pipelines.defs.catalog.assets import CATALOG_JOB
    from pipelines.defs.contracts.assets import CONTRACTS
    from pipelines.defs.ops.schedules import DAILY_JOB
    from pipelines.defs.reports.assets import REPORTS_DAILY_JOB, REPORTS_WEEKLY_JOB
    from pipelines.lib.rollups.run import MONTH, WEEK, period

    first = touched[0].replace(day=1)
    last = period(MONTH, touched[-1].replace(day=1))[1]
    days = days_between(first, last)
    weeks = [d for d in days if d.weekday() == 0 and period(WEEK, d)[1] <= last]
    demo_days = {DEMO_START + timedelta(days=n) for n in range(DEMO_DAYS)}
    months = [d for d in days if d.day == 1]
    # daily_lake without its ingest, which ran for every day first.
    daily = [CONTRACTS, *[m.name for m in MODELS if m.grain == "day"]]
    return [
        ("ingest_daily", None, days),
        (DAILY_JOB, daily, days),
        ("rollups_weekly", None, weeks),
        ("rollups_monthly", None, months),
        (REPORTS_DAILY_JOB, None, [d for d in days if d in demo_days]),
        (REPORTS_WEEKLY_JOB, None, [w for w in weeks if w in demo_days]),
        (CATALOG_JOB, None, [None]),
    ]


def main() -> int:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    # Resolved as the lake resource resolves it (a relative root is a folder of the project), so
    # the runs below read the lake created here, whatever the working directory.
    root = settings.lake_root(os.environ.get("TELEMETRY_LAKE_ROOT"), default_lake_root())
    if "://" not in root:
        # The demo is one of the two things that create a lake (the sample generator is the
        # other): every run refuses a root that does not exist (lib/lake_root.py).
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
    plan = _plan(sorted(date.fromisoformat(d) for d in manifest["partitions"]))
    with Progress(sum(len(keys) for *_, keys in plan), "materialise", "partitions") as progress:
        for job_name, assets, keys in plan:
            job = defs.resolve_job_def(job_name)
            for key in keys:
                result = job.execute_in_process(
                    asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
                    partition_key=key.isoformat() if key else None,
                    instance=instance,
                    raise_on_error=False,
                    # Warnings (such as the development-key one) still show; the rest is in the UI.
                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                )
                if not result.success:
                    print(f"{key} failed; see `dagster dev` for the run", file=sys.stderr)
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
    evaluation = con.execute(
        load_sql("reports/experiment_summary.sql"),
        {"experiments_glob": f"{root}/rollups/experiments_weekly/*/*.parquet"},
    )
    evaluation_columns = [c[0] for c in evaluation.description]
    evaluation_rows = evaluation.fetchall()
    types = sorted({r[1] for r in rows})
    reasons = sorted({r[1] for r in quarantined})
    print(_table("Rows per event type", rows, types))
    print()
    print(_table("Quarantined lines by reason", quarantined, reasons))
    print()
    print(_table("Contracts: share of events that hold (events that broke)", rates, FAMILIES))
    print()
    print(
        _rows(
            "Experiments, weekly: CTR (clicks / impressions, 95% interval by the delta method) "
            "and lift against control",
            evaluation_columns,
            evaluation_rows,
        )
    )
    catalog = os.environ.get("TELEMETRY_CATALOG") or default_catalog_path()
    report = f"{root}/{daily_report_dir(DEMO_START)}/report.html"
    print(f"\nLake: {root}   Browse it: DAGSTER_HOME={PROJECT_ROOT} dagster dev")
    print(f"Operational report of {DEMO_START}: {report}")
    print(f"Catalog for analysts: {catalog}   (README: 'For analysts')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
