"""The daily rollups of the 1M-line day, and the weekly rollups of a week of seven such days,
through the assets' code path (``build_rollup``) on days as ingest publishes them.

The ingested inputs are built untimed and cached: the day is shared with the contracts step; the
week is generated with the day's sample configuration over seven days (``<inputs>-week``) and
ingested once per ``bench.run``, with its daily rollups (the week is merged from them)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from datetime import date, timedelta

from bench.steps import Job, Measured
from bench.steps.contracts import ingested_day
from bench.steps.ingest import ingest
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import DAY, MODELS, WEEK, RollupSettings, build_rollup
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate, load_manifest


def timed(lake: str, grain: str, start: date, threads: int) -> Measured:
    settings = RollupSettings(threads=threads)
    started = time.perf_counter()
    rows = {
        m.name: build_rollup(Lake(lake), m, start, settings).rows
        for m in MODELS
        if m.grain == grain
    }
    return Measured(time.perf_counter() - started, detail={"rows": rows})


def daily(job: Job) -> Measured:
    day = date.fromisoformat(job.day)
    return timed(ingested_day(job, day), DAY, day, job.threads)


def ingested_week(job: Job, monday: date) -> str:
    """``<inputs>-week``: seven days like the inputs' day, generated and ingested (if missing)."""
    ready = f"{job.lake.rstrip('/')}-week"
    if not os.path.isdir(ready):
        config = SampleConfig.from_dict(load_manifest(job.lake)["config"])
        partial = f"{ready}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        generate(replace(config, start=monday, days=7), partial)
        for n in range(-1, 7):
            ingest(partial, monday + timedelta(days=n), job.threads, job.memory_limit)
        # The week is merged from its days' rollups, which the daily step builds day by day.
        settings = RollupSettings(threads=job.threads)
        for n in range(7):
            for model in (m for m in MODELS if m.grain == DAY):
                build_rollup(Lake(partial), model, monday + timedelta(days=n), settings)
        os.rename(partial, ready)
    return ready


def weekly(job: Job) -> Measured:
    monday = date.fromisoformat(job.day)
    return timed(ingested_week(job, monday), WEEK, monday, job.threads)
