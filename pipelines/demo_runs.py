"""The demo's runs (``pipelines/demo.py``): its steps as the code location's named jobs, run in
worker processes under one progress line, what of them is already up to date, and the freshness
checks' results after them.

Each worker imports Dagster, the definitions and Great Expectations once (seconds), then runs
step after step with ``execute_in_process`` in this project's instance; a step's warnings come
back to the main process, which prints each distinct one once.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.lib.lake.paths import PROJECT_ROOT, catalog_path
from pipelines.lib.setup import demo_plan
from pipelines.lib.setup.demo_plan import Step

# Runs at a time: one per core (each run's DuckDB has TELEMETRY_DUCKDB_THREADS, default 2, and
# most of a small run is Python), at most this many (SQLite, Dagster's local storage, takes one
# writer at a time).
MAX_WORKERS = 4
# The runs' own console output: none. Their warnings are printed once each by the demo, and a
# failure as one line naming the run; the rest is in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DEMO_TAG = {"telemetry/trigger": "demo"}


def jobs() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each kind of step (``lib/setup/demo_plan.py``) as (the named job that runs it, the assets it
    materialises). Named jobs, so the UI lists each run under its job rather than as an ad-hoc
    ``__ephemeral_asset_job__``; whole jobs, since a subset of a job's assets would also run
    every check on them, the freshness checks the jobs leave out included (against a lake still
    being built)."""
    from pipelines.defs.automation.freshness import FRESHNESS_JOB
    from pipelines.defs.automation.schedules import DAY_BUILD_JOB
    from pipelines.defs.catalog.assets import CATALOG_JOB
    from pipelines.defs.keys import (
        CATALOG,
        CONTRACTS,
        LEDGER,
        QUARANTINE,
        REPORT_DAILY,
        REPORT_WEEKLY,
    )
    from pipelines.defs.reports.assets import REPORTS_DAILY_JOB, REPORTS_WEEKLY_JOB
    from pipelines.lib.rollups.run import DAY, MODELS, MONTH, WEEK
    from pipelines.lib.schemas.registry import event_types

    def models(grain: str) -> tuple[str, ...]:
        return tuple(m.name for m in MODELS if m.grain == grain)

    return {
        demo_plan.INGEST: ("ingest_daily", (*event_types(), QUARANTINE, LEDGER)),
        demo_plan.DAY: (DAY_BUILD_JOB, (CONTRACTS, *models(DAY))),
        demo_plan.WEEK: ("rollups_weekly", models(WEEK)),
        demo_plan.MONTH: ("rollups_monthly", models(MONTH)),
        demo_plan.REPORT_DAY: (REPORTS_DAILY_JOB, (REPORT_DAILY,)),
        demo_plan.REPORT_WEEK: (REPORTS_WEEKLY_JOB, (REPORT_WEEKLY,)),
        demo_plan.CATALOG: (CATALOG_JOB, (CATALOG,)),
        demo_plan.FRESHNESS: (FRESHNESS_JOB, ()),
    }


@dataclass
class Outcome:
    success: bool
    run_id: str
    seconds: float
    error: str = ""  # one line: what failed
    warnings: list[str] = field(default_factory=list)  # the run's warning lines, as logged


_WORKER: dict[str, Any] = {}


def warm() -> None:
    """Load what every run needs once per worker: the definitions, the instance, and the
    contracts' Great Expectations (seconds to import), while the main process writes the sample."""
    if _WORKER:
        return
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from pipelines.definitions import defs
    from pipelines.lib.contracts import gx_suites  # noqa: F401

    _WORKER.update(defs=defs, instance=dg.DagsterInstance.get())


def _run(job_name: str, key: str | None) -> Outcome:
    warm()
    return execute(_WORKER["defs"], _WORKER["instance"], job_name, key)


def execute(defs: Any, instance: Any, job_name: str, key: str | None) -> Outcome:
    """One run of the named job for partition ``key`` (None: an unpartitioned job)."""
    started = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags=DEMO_TAG,
    )
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event is None and entry.level >= logging.WARNING
    ]
    error = ""
    if not result.success:
        failures = [
            e.step_failure_data.error.message
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data.error
        ]
        error = one_line(failures[0] if failures else "the run failed before its steps")
        # "dagster._core.definitions.events.Failure: ..." says nothing to a newcomer.
        error = re.sub(r"^[\w.]+\.\w*(Error|Failure|Exception): ", "", error)
    return Outcome(result.success, result.run_id, time.monotonic() - started, error, warnings)


def failed(step: Step, outcome: Outcome) -> str:
    return (
        f"error: {step.label()} failed: {outcome.error} (run {outcome.run_id}: open it in the "
        f"Dagster UI, {dev_command()})"
    )


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, cores or 1))


class Printer:
    """Each distinct warning once (the development-key one would otherwise come from every run)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def warn(self, message: str, write: Callable[[str], None] | None = None) -> None:
        line = one_line(message)
        if line not in self.seen:
            self.seen.add(line)
            (write or say)(f"warning: {line}")


def say(text: str) -> None:
    print(text, file=sys.stderr)


def materialise(
    pool: ProcessPoolExecutor,
    steps: list[Step],
    workers: int,
    printer: Printer,
) -> bool:
    """Run ``steps``, ``workers`` at a time, each once every step it needs (of these) has run,
    the dearest first among those ready; under one progress line with the measured rate and an
    ETA from each kind's measured cost (``demo_plan.Eta``). False after a failed run (said)."""
    from tqdm import tqdm

    table = jobs()
    eta = demo_plan.Eta(steps, workers)
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=len(steps),
        desc="materialise",
        unit="run",
        file=sys.stderr,
        smoothing=0,  # the rate since the start: runs/s as measured, not the last run's
        mininterval=0.5 if tty else 10,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} runs "
        "[{elapsed}, {rate_fmt}{postfix}]",
    )
    bar.set_postfix_str("ETA measuring the first runs", refresh=False)

    def write(text: str) -> None:
        bar.write(text, file=sys.stderr)

    planned = {s.id for s in steps}
    pending = list(steps)
    done: set[tuple[str, date | None]] = set()
    running: dict[Future, Step] = {}
    with bar:
        while pending or running:
            ready = [s for s in pending if all(n in done or n not in planned for n in s.needs)]
            ready.sort(key=lambda s: -demo_plan.RELATIVE_COST[s.kind])  # stable: plan order
            for step in ready[: workers - len(running)]:
                pending.remove(step)
                key = step.key.isoformat() if step.key else None
                job = table[step.kind][0]
                running[pool.submit(_run, job, key)] = step
            if not running:
                raise RuntimeError(f"no step can start: {[s.label() for s in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                outcome = future.result()
                for message in outcome.warnings:
                    printer.warn(message, write)
                if not outcome.success:
                    for other in running:
                        other.cancel()
                    write(failed(step, outcome))
                    return False
                done.add(step.id)
                eta.done(step.kind, outcome.seconds)
                left = eta.remaining()
                if left is not None:
                    bar.set_postfix_str(f"ETA {tqdm.format_interval(left)}", refresh=False)
                bar.update(1)
    return True


def built(instance: Any, steps: list[Step], lake: Any, now: datetime) -> set:
    """The steps already done: Dagster holds a materialisation of each of their assets for their
    partition (an ingest's ledger also lists every landing file it reads, as they are now), and
    the freshness checks were evaluated and cannot have changed since (the sensor's own rule)."""
    import dagster as dg

    from pipelines.lib.automation.landing_watch import list_landing, reads_every_file

    table = jobs()
    cache: dict[str, set[str]] = {}

    def partitions(asset: str) -> set[str]:
        if asset not in cache:
            cache[asset] = set(instance.get_materialized_partitions(dg.AssetKey(asset)))
        return cache[asset]

    listing = list_landing(lake)
    done = set()
    for step in steps:
        assets = table[step.kind][1]
        if step.kind == demo_plan.FRESHNESS:
            ok = _freshness_settled(instance, now)
        elif step.key is None:
            ok = all(instance.get_latest_materialization_event(dg.AssetKey(a)) for a in assets)
            if ok and step.kind == demo_plan.CATALOG:
                # Dagster's record is not the file: a deleted catalog, or TELEMETRY_CATALOG
                # pointing elsewhere since, is built again.
                ok = os.path.exists(catalog_path(os.environ.get("TELEMETRY_CATALOG")))
        else:
            ok = all(step.key.isoformat() in partitions(a) for a in assets)
            if ok and step.kind == demo_plan.INGEST:
                ok = reads_every_file(lake, listing, step.key)
        if ok:
            done.add(step.id)
    return done


def _freshness_keys() -> list:
    import dagster as dg

    from pipelines.defs.keys import FRESHNESS_CHECK, daily_asset_keys

    return [dg.AssetCheckKey(key, FRESHNESS_CHECK) for key in daily_asset_keys()]


def _freshness_settled(instance: Any, now: datetime) -> bool:
    keys = _freshness_keys()
    records = instance.event_log_storage.get_asset_check_summary_records(keys)
    for key in keys:
        last = records[key].last_completed_check_execution_record
        if last is None or last.event is None:
            return False
        evaluation = last.event.asset_check_evaluation
        fresh_until = evaluation.metadata.get("dagster/fresh_until_timestamp")
        if evaluation.passed and (fresh_until is None or fresh_until.value < now.timestamp()):
            return False
    return True


def fresh(instance: Any, now: datetime) -> bool:
    """Whether every daily asset holds the partition its freshness check expects now."""
    from pipelines.defs.keys import daily_asset_keys
    from pipelines.lib.lake.calendar import freshness_expected_day

    expected = freshness_expected_day(now).isoformat()
    return all(expected in instance.get_materialized_partitions(k) for k in daily_asset_keys())


def explain_stale(instance: Any, days: list[date], now: datetime) -> None:
    """A pinned demo's lake ends before the day the freshness checks expect: record that as each
    check's result, failed at WARN with the reason, rather than let its sensor's first run fail it
    at ERROR in `dg dev` with no word of the demo. The sensor evaluates it again once the asset
    gets a new partition."""
    import dagster as dg

    from pipelines.lib.lake.calendar import freshness_expected_day

    expected = freshness_expected_day(now)
    for key in _freshness_keys():
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"Stale on purpose: this lake holds the demo's days {days[0]}..{days[-1]} "
                    f"(python -m pipelines.demo --start {days[0]}), and the check expects "
                    f"partition {expected} by 06:00 UTC. Run the demo without --start for days "
                    "through yesterday; the check is then green."
                ),
                metadata={
                    "expected_partition": expected.isoformat(),
                    "demo_first_day": days[0].isoformat(),
                    "demo_last_day": days[-1].isoformat(),
                    "reason": "demo pinned with --start",
                },
            )
        )


def dev_command() -> str:
    dg_cli = Path(sys.executable).parent / "dg"
    shown = os.path.relpath(dg_cli) if Path.cwd() == PROJECT_ROOT else str(dg_cli)
    return f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {shown} dev"
