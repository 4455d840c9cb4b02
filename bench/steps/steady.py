"""``--steady``: one partition of a lake whose landing dates are all full, as every day is once the
lake runs. Partition D then reads four full landing dates (D-1..D+2), so each landing line is
staged by four partitions; the plain copy reads one landing date (D's), what lands in a day.

The ingest step is ``bench.steps.ingest:run`` unchanged (``job.files`` are partition D's files).
Contracts and daily rollups run on ``<inputs>-ingested``: every partition whose window is full
landing dates ingested (D-1, D and D+1 with the default six), built untimed and reused by every
round, so D's contracts find both neighbours as they would in a running lake."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import date, timedelta

from bench.inputs import full_landing_days, steady_partitions
from bench.log import log
from bench.steps import Job, Measured, baseline, contracts, rollups
from bench.steps.ingest import copy_landing, ingest, ingest_timed
from pipelines.lib.ingest.landing import list_landing_files
from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import DAY as DAILY
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import load_manifest


def plain_copy(job: Job) -> Measured:
    """The baseline's copy of landing date D's files alone (one day of landing)."""
    own = f"{landing_dir(date.fromisoformat(job.day))}/"
    files = tuple(f for f in job.files if f.startswith(own))
    if not files:
        raise FileNotFoundError(f"no landing files under {own} in the inputs")
    return baseline.run(replace(job, files=files))


def ingested_lake(job: Job) -> str:
    """``<inputs>-ingested``: the full landing dates, every partition they fully cover ingested
    (built if missing)."""
    ready = f"{job.lake.rstrip('/')}-ingested"
    if not os.path.isdir(ready):
        config = SampleConfig.from_dict(load_manifest(job.lake)["config"])
        first, last = full_landing_days(config)
        files = tuple(f.path for f in list_landing_files(Lake(job.lake), _dates(first, last)))
        lake = copy_landing(replace(job, files=files))
        for day in steady_partitions(config):
            log(f"  steady: ingesting partition {day} (untimed)")
            ingest(lake, day, job.threads, job.memory_limit)
        shutil.rmtree(f"{ready}.partial", ignore_errors=True)
        shutil.move(lake, f"{ready}.partial")
        os.rename(f"{ready}.partial", ready)
    return ready


def _dates(first: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]


def ingest_indexed(job: Job) -> Measured:
    """``steady_ingest`` as a running lake sees it: the neighbours' runs (D-1, D+1; untimed) have
    already indexed the landing files D reads (``lib/ingest/owner_index.py``), so D parses only
    the lines it owns. The index is keyed by each file's identity, so it is built on this copy."""
    lake = copy_landing(job)
    day = date.fromisoformat(job.day)
    for neighbour in (day - timedelta(days=1), day + timedelta(days=1)):
        log(f"  steady: indexing through partition {neighbour} (untimed)")
        ingest(lake, neighbour, job.threads, job.memory_limit)
    return ingest_timed(lake, job)


def contract_checks(job: Job) -> Measured:
    return contracts.timed(ingested_lake(job), date.fromisoformat(job.day), job.threads)


def daily_rollups(job: Job) -> Measured:
    return rollups.timed(ingested_lake(job), DAILY, date.fromisoformat(job.day), job.threads)
