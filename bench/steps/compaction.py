"""Compaction of the 1M-line day: every event partition of the ingested day (one unsorted file
each, as ingest writes it) rewritten sorted by request_id then timestamp_ms, with the row-count and
checksum proof, through the compact job's code path (``compact_partition``)."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date

from bench.steps import Job, Measured
from bench.steps.contracts import ingested_day
from pipelines.lib.lake.paths import events_dir
from pipelines.lib.lake.storage import Lake
from pipelines.lib.maintenance.compact import CompactionSettings, compact_partition
from pipelines.lib.schemas.registry import event_types


def run(job: Job) -> Measured:
    day = date.fromisoformat(job.day)
    source = ingested_day(job, day)
    root = os.path.join(job.scratch, "lake")
    for event_type in event_types():  # a private copy: compaction rewrites in place
        rel = events_dir(event_type, day)
        shutil.copytree(os.path.join(source, rel), os.path.join(root, rel))
    lake = Lake(root)
    settings = CompactionSettings(threads=job.threads)
    started = time.perf_counter()
    results = [compact_partition(lake, t, day, settings) for t in event_types()]
    seconds = time.perf_counter() - started
    detail = {
        r.event_type: {"rows": r.after.rows, "files": r.files_after, "bytes": r.bytes_after}
        for r in results
    }
    if not all(r.passed for r in results):
        raise RuntimeError(f"compaction changed rows or checksum: {detail}")
    return Measured(seconds, detail=detail)
