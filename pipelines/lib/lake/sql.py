"""Load the project's SQL files from ``sql/`` and open the DuckDB that runs them; values always
travel as bound parameters. The one place that quotes SQL text, for what cannot be bound: names,
and the constants of statements DuckDB does not parameterise (DDL, generated checks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from pipelines.lib.lake.storage import Lake

from pipelines.lib.lake.paths import sql_dir


def sql_literal(value: str) -> str:
    """``value`` as an SQL string literal. Only for our own constants (schema files, names, lake
    paths) in statements that take no parameters; event data is always bound."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """Any name as a quoted SQL identifier (a column a file or schema brought, not just ours)."""
    return '"' + name.replace('"', '""') + '"'


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>`` (e.g. ``ingest/route_lines.sql``)."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def connect(
    memory_limit: str = "2GB", threads: int = 2, temp_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded by the run's settings, in UTC, spilling to ``temp_directory``:
    a private run folder (``Lake.private_dir``, ``lake_connection``). Without one it does not
    spill at all; DuckDB's own default (``./.tmp``) would leave raw rows in the working
    directory after a crash."""
    config: dict[str, object] = {
        "memory_limit": memory_limit,
        "threads": threads,
        "temp_directory": temp_directory or "",
    }
    con = duckdb.connect(config=config)
    con.execute("set TimeZone = 'UTC'")
    return con


@contextlib.contextmanager
def lake_connection(
    lake: Lake, memory_limit: str = "2GB", threads: int = 2
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``connect()`` for reading a lake, spilling to a private folder of this run under the
    lake's work root; the connection is closed and the folder removed however the block ends.
    Off a local disk DuckDB reads through the lake's own filesystem (httpfs is not available
    here)."""
    with lake.private_dir() as spill:
        con = connect(memory_limit, threads, str(spill))
        try:
            if not lake.is_local:
                con.register_filesystem(lake.fs)
            yield con
        finally:
            con.close()
