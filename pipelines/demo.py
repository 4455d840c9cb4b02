"""The demo: sample telemetry through every asset, into a local lake under data/.

    python -m pipelines.demo [--start YYYY-MM-DD] [--days N] [--force]

By default the sample is the latest whole Monday..Sunday week and the days since, through
yesterday (UTC), so that the freshness checks in `dg dev` are honestly green; ``--start`` pins
its first day (``--days``, default 7, its length). The configuration is checked first (the
doctor's checks, one line per problem, exit 1). The sample goes to TELEMETRY_LAKE_ROOT (default
data/lake) and only what its days need is materialised (``lib/setup/demo_plan.py``), by the code
location's named jobs in this project's Dagster instance (so `dg dev` shows the runs), several
runs at a time on the cores here. A second run says what is up to date and skips it (``--force``
rebuilds it); a run for other dates starts the demo lake again (``_afresh``). Prints rows per
event type, quarantine counts, the contract families' rates per day, the weekly experiment
evaluation, and where the latest day's and the week's reports are.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import fsspec

from pipelines import demo_runs
from pipelines.lib.contracts.rules import FAMILIES
from pipelines.lib.lake import settings
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import (
    PROJECT_ROOT,
    catalog_path,
    daily_report_dir,
    default_lake_root,
    weekly_report_dir,
)
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.sample.config import MANIFEST_NAME, WRITING_NAME, SampleConfig
from pipelines.lib.sample.generator import generate, load_manifest, progress_bar
from pipelines.lib.setup import demo_plan
from pipelines.lib.setup import doctor_checks as doctor
from pipelines.lib.setup.demo_plan import Step

# At the root of a lake the demo built: only such a lake (or an empty folder) is one it writes
# into, and deletes to start again.
DEMO_MARK = ".telemetry-demo-lake"

KIND_NAMES = {
    demo_plan.INGEST: "ingest",
    demo_plan.DAY: "contracts and daily rollups",
    demo_plan.WEEK: "weekly rollups",
    demo_plan.MONTH: "monthly rollups",
    demo_plan.REPORT_DAY: "daily reports",
    demo_plan.REPORT_WEEK: "weekly reports",
    demo_plan.CATALOG: "catalog",
    demo_plan.FRESHNESS: "freshness checks",
}


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


# --- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo",
        description="Sample telemetry through every asset into the local lake, recorded in this "
        "project's Dagster instance. Default: the latest whole Monday..Sunday week and the days "
        "since, through yesterday (UTC).",
    )
    parser.add_argument(
        "--start",
        type=_day,
        metavar="YYYY-MM-DD",
        help="pin the sample's first day (a daily partition: from TELEMETRY_FIRST_DATE on)",
    )
    parser.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="the sample's length in days (default 7 with --start; without it, ending yesterday)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write the sample and rebuild every step again, even those already up to date",
    )
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give it as YYYY-MM-DD") from None


def _window(args: argparse.Namespace, first: date, today: date) -> list[date]:
    if args.start is None and args.days is None:
        start, days = demo_plan.default_window(today)
    elif args.start is None:
        start, days = today - timedelta(days=args.days), args.days
    else:
        start, days = args.start, args.days or demo_plan.WEEK_DAYS
    return demo_plan.check_window(start, days, first, today)


def _sample_there(config: SampleConfig, root: str) -> tuple[dict | None, str]:
    """(The manifest of the sample in ``root``'s landing zone if it is this very sample, else
    None; the first and last day of the earlier, different sample there, else "")."""
    try:
        manifest = load_manifest(root)
    except (OSError, ValueError):
        return None, ""
    if manifest.get("config") == config.to_dict():
        return manifest, ""
    days = sorted(manifest.get("partitions") or {}) or ["?"]
    return None, f"{days[0]}..{days[-1]}"


def _afresh(root: str, earlier: str, defs: Any, instance: Any) -> None:
    """Delete the demo lake built from an earlier sample, and its assets' records in this
    instance (the runs stay). A new sample rewrites the landing files its days were built from,
    and a day re-ingested alone would not balance against its neighbours' ledgers, which list
    the earlier files (the ledger check blocks it): the demo starts its lake again instead."""
    demo_runs.say(
        f"The lake holds an earlier sample ({earlier}): deleting it and its assets' records in "
        "this Dagster instance (not the runs) to build this one"
    )
    fs, base = fsspec.core.url_to_fs(root)
    base = base.rstrip("/")
    if not _is_demo_lake(fs, base, root):
        raise ConfigError(_foreign_landing(root) or f"{root} is not the demo's lake")
    for entry in fs.ls(base, detail=False):
        if entry.rstrip("/").rsplit("/", 1)[-1] != DEMO_MARK:
            fs.rm(entry, recursive=True)
    instance.wipe_assets(list(defs.resolve_asset_graph().get_all_asset_keys()))


def _write_sample(config: SampleConfig, root: str) -> dict:
    demo_runs.say(f"Generating {config.days} days of sample events into {root}/landing ...")
    with progress_bar(None, "sample") as progress:
        manifest = generate(config, root, on_progress=progress.update)
    demo_runs.say(f"  {len(manifest['files'])} landing files written")
    return manifest


def _say_skipped(steps: Iterable[Step]) -> None:
    counts: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        counts[step.kind].append(step)
    if not counts:
        return
    parts = []
    for kind, group in counts.items():
        keys = [s.key for s in group if s.key is not None]
        span = f" {keys[0]}..{keys[-1]}" if len(keys) > 1 else (f" {keys[0]}" if keys else "")
        parts.append(f"{KIND_NAMES[kind]} ({len(group)}{span})" if keys else KIND_NAMES[kind])
    demo_runs.say("Already up to date, skipped (--force rebuilds them): " + "; ".join(parts))


def _build(
    args: argparse.Namespace,
    days: list[date],
    first: date,
    now: datetime,
    root: str,
    printer: demo_runs.Printer,
) -> list[Step] | None:
    """Write the sample unless it is there, then run every step that is not up to date; the
    plan's steps, or None after a failure (said)."""
    workers = demo_runs.workers()
    with contextlib.ExitStack() as stack:

        def start_workers() -> ProcessPoolExecutor:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=demo_runs.warm,
                )
            )
            # Started now, each worker imports Dagster and the definitions meanwhile.
            for _ in range(workers):
                pool.submit(demo_runs.warm)
            stack.push(_interrupt_workers(pool))  # runs before the pool's exit waits for them
            return pool

        config = SampleConfig(start=days[0], days=len(days))
        manifest, earlier = _sample_there(config, root)
        write = manifest is None or args.force
        if write and (foreign := _foreign_landing(root)):
            demo_runs.say(f"error: {foreign}")
            return None
        if write:
            _claim(root)
        pool = start_workers() if write else None  # a new sample: there is work

        # Imported here: loading definitions reads the environment set above.
        import dagster as dg

        # Beta parameters the code location uses on purpose: not the newcomer's concern.
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        from pipelines.definitions import defs

        instance = dg.DagsterInstance.get()
        if earlier:
            _afresh(root, earlier, defs, instance)
        if write:
            manifest = _write_sample(config, root)
        else:
            last = config.start + timedelta(days=config.days - 1)
            demo_runs.say(
                f"Sample {config.start}..{last}: already in {root}/landing (--force writes it "
                "again)"
            )

        lake = defs.resources["lake"].process_config_and_initialize().lake()
        bands = defs.resources["slo"].process_config_and_initialize().config().bands
        landing = [date.fromisoformat(d.removeprefix("dt=")) for d in lake.list_dirs("landing")]
        steps = demo_plan.plan(
            manifest["partitions"],
            landing,
            first,
            now.date(),
            now,
            (bands.window_days, bands.min_history),
        )
        todo = demo_plan.stale(steps, demo_runs.built(instance, steps, lake, now), args.force)
        _say_skipped(s for s in steps if s not in todo)
        builds = [s for s in todo if s.kind != demo_plan.FRESHNESS]
        if builds:
            pool = pool or start_workers()
            if not demo_runs.materialise(pool, builds, workers, printer):
                return None
        if any(s.kind == demo_plan.FRESHNESS for s in todo) and not _freshness(
            defs, instance, days, printer
        ):
            return None
    return steps


def _freshness(defs: Any, instance: Any, days: list[date], printer: demo_runs.Printer) -> bool:
    """Evaluate the freshness checks (here: one short run, no worker to start for it), or, when
    the lake ends before the day they expect (a pinned --start), record why they fail."""
    if not demo_runs.fresh(instance, datetime.now(UTC)):
        demo_runs.explain_stale(instance, days, datetime.now(UTC))
        demo_runs.say(
            "note: the freshness checks fail (at WARN, saying why): the lake ends on "
            f"{days[-1]}, not yesterday"
        )
        return True
    job = demo_runs.jobs()[demo_plan.FRESHNESS][0]
    outcome = demo_runs.execute(defs, instance, job, None)
    for message in outcome.warnings:
        printer.warn(message)
    if not outcome.success:
        demo_runs.say(demo_runs.failed(demo_plan.Step(demo_plan.FRESHNESS, None), outcome))
    return outcome.success


def _is_demo_lake(fs: Any, base: str, root: str) -> bool:
    """Whether the demo wrote ``root``: its mark is there, or a sample being written (cut short
    by Ctrl-C or a kill), or (the default data/lake of a demo from before the mark) a sample."""
    return (
        fs.exists(f"{base}/{DEMO_MARK}")
        or fs.exists(f"{base}/landing/{WRITING_NAME}")
        or (root == default_lake_root() and fs.exists(f"{base}/landing/{MANIFEST_NAME}"))
    )


def _holds_files(fs: Any, base: str) -> bool:
    """Whether any file is under ``base`` (stops at the first one: a real lake is big)."""
    if not fs.exists(base):
        return False
    return any(files for _, _, files in fs.walk(base))


def _foreign_landing(root: str) -> str | None:
    """Why the demo must not write its sample into ``root``: it holds files and the demo did not
    write it (writing a sample deletes landing files, and a sample of other dates later deletes
    the whole demo lake), so it may be a real lake, even one whose landing zone retention
    emptied."""
    fs, base = fsspec.core.url_to_fs(root)
    base = base.rstrip("/")
    if _is_demo_lake(fs, base, root) or not _holds_files(fs, base):
        return None
    return (
        f"TELEMETRY_LAKE_ROOT={root} holds files the demo did not write (no {DEMO_MARK}): "
        "the demo writes a sample there and later deletes the lake it built. Point "
        "TELEMETRY_LAKE_ROOT at an empty folder, or unset it for data/lake"
    )


def _claim(root: str) -> None:
    """Mark ``root`` as the demo's lake (``_foreign_landing`` passed: it is empty or the demo's)."""
    fs, base = fsspec.core.url_to_fs(root)
    base = base.rstrip("/")
    if not fs.exists(f"{base}/{DEMO_MARK}"):
        if "://" not in root:
            fs.makedirs(base, exist_ok=True)
        fs.pipe(
            f"{base}/{DEMO_MARK}",
            b"This lake was built by python -m pipelines.demo, which deletes it to start again.\n",
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    # Resolved as the lake resource resolves it (a relative root is a folder of the project), so
    # the runs below read the lake created here, whatever the working directory.
    root = settings.lake_root(os.environ.get("TELEMETRY_LAKE_ROOT"), default_lake_root())
    if "://" not in root:
        # The demo is one of the two things that create a lake (the sample generator is the
        # other): every run refuses a root that does not exist (lib/lake/lake_root.py).
        os.makedirs(root, exist_ok=True)

    # The runs go through execute_in_process, which skips the executor's preflight: the same
    # checks here, before anything is written.
    now = datetime.now(UTC)
    findings = doctor.check(os.environ, now.date())
    errors = [f.message for f in findings if f.level == doctor.ERROR]
    days: list[date] = []
    first = settings.DEFAULT_FIRST_DATE
    if not errors:
        first = settings.first_partition_date(os.environ.get("TELEMETRY_FIRST_DATE"))
        try:
            days = _window(args, first, now.date())
        except ConfigError as exc:
            errors.append(demo_runs.one_line(str(exc)))
    if errors:
        for message in errors:
            demo_runs.say(f"error: {message}")
        demo_runs.say(
            "demo: nothing was run; `python -m pipelines.doctor` checks the settings again"
        )
        return 1
    printer = demo_runs.Printer()
    for finding in findings:
        if finding.level == doctor.WARNING:
            printer.warn(finding.message)

    # SIGTERM (a closed terminal's SIGHUP too) stops the demo as Ctrl-C does: its workers are
    # told, their runs end as interrupted, and no worker outlives it.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminated)
    try:
        steps = _build(args, days, first, now, root, printer)
    except KeyboardInterrupt:
        demo_runs.say(
            "demo: interrupted; run it again to finish (it skips what is already up to date)"
        )
        return 130
    if steps is None:
        return 1
    _summary(root, steps)
    return 0


_TERMINATED: list[int] = []


def _terminated(signum: int, _frame: object) -> None:
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _interrupt_workers(pool: ProcessPoolExecutor):
    """An exit callback for the demo's worker pool: when the demo was stopped by a signal only
    it received (SIGTERM, SIGHUP; a terminal's Ctrl-C reaches the workers by itself), pass
    SIGINT on to the workers, so that their runs end as interrupted and the pool's exit, which
    waits for them, returns; queued steps are cancelled."""

    def on_exit(exc_type, _exc, _tb) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            if _TERMINATED:
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
        return False

    return on_exit


def _summary(root: str, steps: list[Step]) -> None:
    con = duckdb.connect()

    def query(sql: str, name: str, glob: str) -> tuple[list[str], list[tuple]]:
        # A table the demo did not build (no whole week: no weekly rollup) has no rows to show.
        try:
            found = con.execute(load_sql(sql), {name: f"{root}/{glob}"})
        except duckdb.IOException:
            return [], []
        return [c[0] for c in found.description], found.fetchall()

    _, rows = query("reports/rows_by_type.sql", "events_glob", "events/*/*/*.parquet")
    _, quarantined = query(
        "reports/quarantine_by_reason.sql", "quarantine_glob", "quarantine/*/*.parquet"
    )
    _, rates = query("reports/contract_rates.sql", "quality_glob", "quality/*/*.parquet")
    evaluation_columns, evaluation_rows = query(
        "reports/experiment_summary.sql",
        "experiments_glob",
        "rollups/experiments_weekly/*/*.parquet",
    )
    types = sorted({r[1] for r in rows})
    reasons = sorted({r[1] for r in quarantined})
    print(_table("Rows per event type", rows, types))
    print()
    print(_table("Quarantined lines by reason", quarantined, reasons))
    print()
    print(_table("Contracts: share of events that hold (events that broke)", rates, FAMILIES))
    if evaluation_rows:
        print()
        print(
            _rows(
                "Experiments, weekly: CTR (clicks / impressions, 95% interval by the delta "
                "method) and lift against control",
                evaluation_columns,
                evaluation_rows,
            )
        )
    catalog = catalog_path(os.environ.get("TELEMETRY_CATALOG"))
    days = [s.key for s in steps if s.kind == demo_plan.REPORT_DAY and s.key]
    weeks = [s.key for s in steps if s.kind == demo_plan.REPORT_WEEK and s.key]
    print(f"\nLake: {root}")
    print(f"Browse it in the Dagster UI: {demo_runs.dev_command()}   (or: make dev)")
    if days:
        print(
            f"Report of the latest day, {days[-1]}: {root}/{daily_report_dir(days[-1])}/report.html"
        )
    if weeks:
        report = f"{root}/{weekly_report_dir(weeks[-1])}/report.html"
        print(f"Report of the week of {weeks[-1]}: {report}")
    elif days:
        print(
            f"Report of a week: none, {days[0]}..{days[-1]} holds no whole Monday..Sunday week "
            "(pass --start with a Monday and --days 7 or more)"
        )
    print(f"Catalog for analysts: {catalog}   (README: 'For analysts')")


if __name__ == "__main__":
    sys.exit(main())
