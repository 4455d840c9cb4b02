"""Our ingest of the day, through the asset's code path, on a fresh copy of the landing files."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date

from bench.log import log
from bench.steps import Job, Measured
from pipelines.lib.ingest.keyring import Keyring
from pipelines.lib.ingest.partition import IngestResult, IngestSettings, ingest_partition
from pipelines.lib.ingest.pii import DEV_KEY
from pipelines.lib.lake.storage import Lake


def copy_landing(job: Job) -> str:
    """Copy the files the partition reads into ``scratch/lake`` (no outputs there yet)."""
    lake = os.path.join(job.scratch, "lake")
    for rel in job.files:
        target = os.path.join(lake, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(job.lake, rel), target)
    return lake


def _log(message: str) -> None:
    log(f"  ingest: {message}")


def ingest(lake: str, day: date, threads: int, memory_limit: str) -> IngestResult:
    """``ingest_partition`` as the asset calls it, with the development PII key."""
    return ingest_partition(
        Lake(lake),
        day,
        Keyring.single(DEV_KEY),
        IngestSettings(threads=threads, memory_limit=memory_limit),
        log=_log,
    )


def run(job: Job) -> Measured:
    """A fresh copy of the landing files, nothing indexed: every line is parsed to find its
    partition."""
    return ingest_timed(copy_landing(job), job)


def ingest_timed(lake: str, job: Job) -> Measured:
    started = time.perf_counter()
    result = ingest(lake, date.fromisoformat(job.day), job.threads, job.memory_limit)
    seconds = time.perf_counter() - started
    detail = {
        "rows": result.rows_total,
        "quarantined": result.quarantined_total,
        "duplicates": result.duplicates,
        "bytes_written": result.bytes_written,
    }
    return Measured(seconds, detail=detail)
