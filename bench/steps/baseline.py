"""The floor: DuckDB copies the same landing lines to one Parquet file, no checks at all."""

from __future__ import annotations

import os
import time

import duckdb

from bench.steps import Job, Measured


def run(job: Job) -> Measured:
    """``COPY (select * from read_json([...files])) TO scratch/baseline.parquet`` on 2 threads."""
    files = [os.path.join(job.lake, f) for f in job.files]
    # COPY's target cannot be a bound parameter in DuckDB; it is our own scratch path, quoted.
    target = os.path.join(job.scratch, "baseline.parquet").replace("'", "''")
    statement = (
        "copy (select * from read_json($files, format = 'newline_delimited', "
        "ignore_errors = true, union_by_name = true)) to '" + target + "' (format parquet)"
    )
    con = duckdb.connect(config={"threads": job.threads, "temp_directory": job.scratch})
    started = time.perf_counter()
    copied = con.execute(statement, {"files": files}).fetchone()
    seconds = time.perf_counter() - started
    con.close()
    return Measured(seconds, detail={"rows": copied[0] if copied else None})
