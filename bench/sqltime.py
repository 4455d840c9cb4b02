"""Seconds per SQL statement of one ingest: cProfile sees DuckDB's work only as the Python line
that issued it, so ``--profile`` also times every ``execute`` of ingest's connection and names it
by its SQL file (``sql/ingest/*.sql``) or, for the SQL generated from the schemas, its first line.
Statements run more than once (staging, batch by batch) are summed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pipelines.lib.ingest.partition as ingest_module
from pipelines.lib.lake.paths import sql_dir


class _TimedConnection:
    """A DuckDB connection whose ``execute`` records its duration; everything else passes."""

    def __init__(self, con: Any, record: list[tuple[str, float]], names: dict[str, str]) -> None:
        self._con = con
        self._record = record
        self._names = names

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = self._con.execute(query, *args, **kwargs)
        label = self._names.get(query) or query.strip().splitlines()[0][:72]
        self._record.append((label, time.perf_counter() - started))
        return result


@contextlib.contextmanager
def statement_timings() -> Iterator[list[tuple[str, float]]]:
    """Within the block, ingest's connections record (statement, seconds) into the list yielded."""
    names = {
        path.read_text(encoding="utf-8"): f"sql/ingest/{path.name}"
        for path in sorted((sql_dir() / "ingest").glob("*.sql"))
    }
    record: list[tuple[str, float]] = []
    connect = ingest_module.connect

    def timed_connect(*args: Any, **kwargs: Any) -> Any:
        return _TimedConnection(connect(*args, **kwargs), record, names)

    ingest_module.connect = timed_connect
    try:
        yield record
    finally:
        ingest_module.connect = connect


def summary(record: list[tuple[str, float]], top: int) -> str:
    """The ``top`` statements by total seconds, one line each."""
    totals: dict[str, list[float]] = {}
    for label, seconds in record:
        totals.setdefault(label, []).append(seconds)
    ranked = sorted(totals.items(), key=lambda item: -sum(item[1]))[:top]
    lines = [f"{'seconds':>8}  {'runs':>4}  statement"]
    lines += [f"{sum(s):8.2f}  {len(s):4d}  {label}" for label, s in ranked]
    lines.append(f"{sum(s for _, s in record):8.2f}  {len(record):4d}  all statements")
    return "\n".join(lines)
