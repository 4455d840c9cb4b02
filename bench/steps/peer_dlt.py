"""A peer: dlt (the ``bench`` extra) loads the same landing lines into Parquet through its
filesystem destination, with its own schema inference, normalisation and load, no validation.

The lines are read the way dlt's filesystem source reads JSONL (``read_jsonl``: a file at a time,
chunks of parsed lines), except that a line which is not a JSON object is skipped, as the
baseline's ``ignore_errors`` skips it (``read_jsonl`` would stop the load at the first one)."""

from __future__ import annotations

import gzip
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.steps import Job, Measured

CHUNK = 1000  # read_jsonl's default chunksize


def _lines(lake: str, files: tuple[str, ...]) -> Iterator[list[dict[str, Any]]]:
    for rel in files:
        path = os.path.join(lake, rel)
        with gzip.open(path, "rb") if rel.endswith(".gz") else open(path, "rb") as f:
            chunk: list[dict[str, Any]] = []
            for line in f:
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    chunk.append(value)
                    if len(chunk) >= CHUNK:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk


def run(job: Job) -> Measured:
    # No usage telemetry from the benchmark; state and config stay in the scratch folder.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = os.path.join(job.scratch, "dlt-data")
    os.environ["NORMALIZE__WORKERS"] = str(job.threads)
    import dlt  # the bench extra; bench.run skips this step when it is not installed

    target = Path(job.scratch, "dlt")
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=os.path.join(job.scratch, "dlt-pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=target.as_uri()),
        dataset_name="landing",
    )
    events = dlt.resource(_lines(job.lake, job.files), name="events")
    started = time.perf_counter()
    info = pipeline.run(events, loader_file_format="parquet")
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    rows = pipeline.last_trace.last_normalize_info.row_counts
    tables = {t: n for t, n in sorted(rows.items()) if not t.startswith("_dlt")}
    written = sum(p.stat().st_size for p in target.rglob("*.parquet"))
    # Normalize runs in worker processes: the step's peak RSS is this process's; theirs is here.
    workers_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    detail = {
        "rows": tables,
        "bytes_written": written,
        "normalize_workers_peak_rss_mb": round(workers_kib / 1024, 1),
    }
    return Measured(seconds, detail=detail)
