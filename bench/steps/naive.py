"""The naive reference: a plain per-event Python loop (json.loads, jsonschema, pandas, Parquet).

It runs on the first ``job.sample_lines`` lines in (dt, file, line) order; the caller scales
its time to the whole day.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import IO, Any

import pandas as pd

from bench.steps import Job, Measured
from pipelines.lib.schemas.registry import accepted_versions
from pipelines.lib.schemas.validator import reference_validator


def _open(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _lines(job: Job) -> Iterator[bytes]:
    """The first ``job.sample_lines`` landing lines, in (dt, file, line) order."""
    left = job.sample_lines
    for rel in job.files:
        with _open(os.path.join(job.lake, rel)) as handle:
            for line in handle:
                if left == 0:
                    return
                left -= 1
                yield line


def _validate(job: Job) -> tuple[dict[str, list[dict[str, Any]]], Counter[str]]:
    """Valid events grouped by type, and counts of what was read and what failed."""
    # Each event is held to the schema version it names, as ingest does.
    validators = {
        (t, s.version): reference_validator(s.document)
        for t, versions in accepted_versions().items()
        for s in versions
    }
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for line in _lines(job):
        counts["lines"] += 1
        try:
            event = json.loads(line)
        except ValueError:
            counts["malformed_json"] += 1
            continue
        event_type, version = (
            (event.get("event_type"), event.get("schema_version"))
            if isinstance(event, dict)
            else (None, None)
        )
        validator = validators.get((event_type, version))
        if validator is None:
            counts["unknown_event_type_or_version"] += 1
        elif not validator.is_valid(event):
            counts["schema_violation"] += 1
        else:
            events[event_type].append(event)
    return events, counts


def run(job: Job) -> Measured:
    started = time.perf_counter()
    events, counts = _validate(job)
    for event_type, rows in events.items():
        pd.DataFrame(rows).to_parquet(os.path.join(job.scratch, f"{event_type}.parquet"))
    seconds = time.perf_counter() - started
    detail = {**counts, "rows": sum(len(rows) for rows in events.values())}
    return Measured(seconds, lines=counts["lines"], detail=detail)
