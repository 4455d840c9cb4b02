"""Benchmark one day of ingest against a raw DuckDB JSON->Parquet copy and a naive Python loop.

    make bench                                   # = python -m bench.run (1M lines, 3 rounds)
    python -m bench.run --events 200000 --rounds 3
    python -m bench.run --scale                  # also a 10x day: time and peak RSS growth
    python -m bench.run --profile                # one ingest: cProfile and SQL times on stderr
    python -m bench.run --steady                 # one partition of a lake of full landing days

Inputs come from the sample generator and are cached under ``--work-dir`` by (lines, seed).
Steps run interleaved, round after round, each in a fresh child process that reports its own
peak RSS. The table goes to stdout and ``bench/results/bench-<lines>.json`` (``--steady``:
``bench-steady-<lines>.json``); progress to stderr.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import report, sqltime
from bench.inputs import DAY, Inputs, prepare, prepare_steady
from bench.log import log
from bench.steps import STEADY_STEPS, STEPS, Job, Step
from bench.steps.ingest import copy_landing, ingest

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
SCALE_FACTOR = 10
STEADY_DAYS = 6
PROFILE_TOP = 25


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--events", type=_positive, default=1_000_000, help="landing lines of the day"
    )
    parser.add_argument(
        "--rounds", type=_positive, default=3, help="measurements per step (median)"
    )
    parser.add_argument("--seed", type=int, default=7, help="sample generator seed")
    parser.add_argument(
        "--work-dir",
        default=str(REPO / "bench" / ".work"),
        help="cached inputs and scratch space",
    )
    parser.add_argument(
        "--sample-lines", type=_positive, default=100_000, help="lines the naive loop runs on"
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help=f"also run baseline and ingest on a {SCALE_FACTOR}x day (10M lines by default)",
    )
    parser.add_argument("--scale-rounds", type=_positive, default=1, help="rounds of the 10x day")
    parser.add_argument(
        "--memory-limit",
        default="2GB",
        help="DuckDB memory_limit of the ingest (the run's memory bound, DuckDBSettings's default)",
    )
    parser.add_argument(
        "--steps",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help="comma-separated steps to run (default: every step), e.g. baseline,ingest",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only run one ingest in-process under cProfile and print the top entries",
    )
    parser.add_argument(
        "--steady",
        action="store_true",
        help="steady state instead: one partition of a lake whose landing days are all full, "
        "against the copy of one landing day (with contracts and daily rollups)",
    )
    parser.add_argument(
        "--steady-days",
        type=_positive,
        default=STEADY_DAYS,
        help="full landing days of the --steady lake (>= 4; 6 ingests D's neighbours too)",
    )
    return parser


def measure(step: Step, job: Job) -> dict[str, Any]:
    """Run ``step`` in a fresh Python process on an empty scratch folder; return its result."""
    shutil.rmtree(job.scratch, ignore_errors=True)
    os.makedirs(job.scratch)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", step.name, job.to_json()],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    finally:
        shutil.rmtree(job.scratch, ignore_errors=True)
    return json.loads(done.stdout.splitlines()[-1])


def run_rounds(
    inputs: Inputs, steps: Sequence[Step], rounds: int, work_dir: str, base: Job
) -> dict[str, list[dict[str, Any]]]:
    """Every built step once per round, interleaved (the order rotates from round to round)."""
    for step in steps:
        if step.built and step.missing:
            log(f"{step.name}: skipped, {step.missing} is not installed: {report.INSTALL_HINT}")
    built = [s for s in steps if s.built and not s.missing]
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in steps}
    if not built:
        return runs
    for n in range(rounds):
        shift = n % len(built)
        for step in built[shift:] + built[:shift]:
            label = f"{inputs.lines:,} lines, round {n + 1}/{rounds}, {step.name}"
            log(f"{label}: running")
            scratch = os.path.join(work_dir, "scratch", step.name)
            job = replace(base, lake=inputs.lake, files=inputs.files, scratch=scratch)
            result = measure(step, job)
            runs[step.name].append(result)
            log(f"{label}: {result['seconds']:.2f} s, {result['peak_rss_kib'] / 1024:.0f} MB")
    return runs


def run_suite(
    inputs: Inputs, steps: Sequence[Step], rounds: int, work_dir: str, base: Job
) -> dict[str, Any]:
    """Measure ``steps`` on ``inputs``; the result is what the JSON file holds."""
    # The contracts and rollup steps reuse ingested copies of the inputs (the day, and a week of
    # such days); build them anew for each run so they reflect the current ingest code.
    for suffix in ("-ingested", "-week"):
        shutil.rmtree(f"{inputs.lake.rstrip('/')}{suffix}", ignore_errors=True)
    runs = run_rounds(inputs, steps, rounds, work_dir, base)
    common = {
        "day": DAY.isoformat(),
        "files": len(inputs.files),
        "rounds": rounds,
        "memory_limit": base.memory_limit,
        "inputs": inputs.lake,
        "machine": report.machine(),
    }
    if inputs.full_days is not None:  # --steady: per landing day, what a running lake gets
        rows = [report.step_row(s, runs[s.name], inputs.day_lines or 0) for s in steps]
        first, last = inputs.full_days
        return {
            "mode": "steady",
            **common,
            "lines": inputs.day_lines,
            "partition_lines": inputs.lines,
            "steady_days": (last - first).days + 1,
            "full_landing_days": [first.isoformat(), last.isoformat()],
            "steps": rows,
            "ratios": report.ratios(rows, report.STEADY_RATIOS),
        }
    rows = [report.step_row(s, runs[s.name], inputs.lines) for s in steps]
    return {**common, "lines": inputs.lines, "steps": rows, "ratios": report.ratios(rows)}


def write_json(result: dict[str, Any], name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"bench-{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def profile_ingest(inputs: Inputs, work_dir: str, name: str) -> None:
    """One ingest in this process under cProfile: the top entries by cumulative time, then the
    seconds of each SQL statement, to stderr."""
    scratch = os.path.join(work_dir, "scratch", "profile")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        job = Job(inputs.lake, DAY.isoformat(), inputs.files, scratch)
        lake = copy_landing(job)
        log(f"profile: ingest of {inputs.lines:,} lines under cProfile")
        profiler = cProfile.Profile()
        with sqltime.statement_timings() as statements:
            profiler.runcall(ingest, lake, DAY, job.threads, job.memory_limit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    dump = RESULTS_DIR / f"profile-ingest-{name}.prof"
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.dump_stats(dump)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    log(f"profile: full stats in {dump} (python -m pstats {dump.name}, or snakeviz)")
    log("profile: DuckDB statements by total seconds\n" + sqltime.summary(statements, PROFILE_TOP))


def run_scale(
    small: dict[str, Any], args: argparse.Namespace, work_dir: str, base: Job
) -> dict[str, Any]:
    """The in-scale steps on a day ``SCALE_FACTOR`` times larger, compared with ``small``."""
    big = prepare(work_dir, args.events * SCALE_FACTOR, args.seed)
    steps = [s for s in selected(args) if s.in_scale]
    large = run_suite(big, steps, args.scale_rounds, work_dir, base)
    scale = report.scale_summary(small, large)
    print("\n" + report.format_table(large) + "\n\n" + report.format_scale(scale), flush=True)
    return scale


def selected(args: argparse.Namespace) -> list[Step]:
    """The steps of the mode, those ``--steps`` names (``--steady``: with or without "steady_")."""
    steps = STEADY_STEPS if args.steady else STEPS

    def names(step: Step) -> set[str]:
        return {step.name, step.name.removeprefix("steady_")}

    unknown = set(args.steps) - set().union(*(names(s) for s in steps))
    if unknown:
        raise SystemExit(f"--steps: no step named {', '.join(sorted(unknown))}")
    return [s for s in steps if not args.steps or names(s) & set(args.steps)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work_dir = os.path.abspath(args.work_dir)
    if args.steady and args.scale:
        raise SystemExit("--scale measures the one-day mode; run it without --steady")
    if args.steady:
        try:
            inputs = prepare_steady(work_dir, args.events, args.seed, args.steady_days)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        name = f"steady-{args.events}"
    else:
        inputs = prepare(work_dir, args.events, args.seed)
        name = str(args.events)
    if args.profile:
        profile_ingest(inputs, work_dir, name)
        return 0
    base = Job(
        "", DAY.isoformat(), (), "", sample_lines=args.sample_lines, memory_limit=args.memory_limit
    )
    result = run_suite(inputs, selected(args), args.rounds, work_dir, base)
    print(report.format_table(result), flush=True)
    if args.scale:
        result["scale"] = run_scale(result, args, work_dir, base)
    log(f"results: {write_json(result, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
