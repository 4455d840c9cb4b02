"""The day's contracts (cross-event SQL, the GX suites with Data Docs, timeliness), through the
asset's code path, on the day as ingest publishes it. The ingested day is built once per inputs
(untimed) and reused by every round: contracts only read events and rewrite their own outputs."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date

from bench.steps import Job, Measured
from bench.steps.ingest import copy_landing, ingest
from pipelines.lib.contracts.run import run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.lake.storage import Lake


def ingested_day(job: Job, day: date) -> str:
    """``<inputs>-ingested``: the inputs' landing files with day D ingested (built if missing)."""
    ready = f"{job.lake.rstrip('/')}-ingested"
    if not os.path.isdir(ready):
        lake = copy_landing(job)
        ingest(lake, day, job.threads, job.memory_limit)
        shutil.rmtree(f"{ready}.partial", ignore_errors=True)
        shutil.move(lake, f"{ready}.partial")
        os.rename(f"{ready}.partial", ready)
    return ready


def run(job: Job) -> Measured:
    day = date.fromisoformat(job.day)
    return timed(ingested_day(job, day), day, job.threads)


def timed(lake: str, day: date, threads: int) -> Measured:
    """``run_contracts`` of ``day`` on an ingested ``lake``, timed."""
    started = time.perf_counter()
    result = run_contracts(Lake(lake), day, Thresholds(), threads=threads)
    seconds = time.perf_counter() - started
    detail = {
        "violations": result.violations,
        "rates": {f: round(r["rate"], 6) for f, r in result.rates.items()},
        "neighbours": result.neighbours,
        "bytes_written": result.bytes_written,
    }
    return Measured(seconds, detail=detail)
