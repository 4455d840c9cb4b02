"""Load the project's SQL files from ``sql/`` and open the DuckDB that runs them; values always
travel as bound parameters."""

from __future__ import annotations

from functools import cache

import duckdb

from pipelines.lib.paths import sql_dir


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>`` (e.g. ``ingest/stage_lines.sql``)."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def connect(
    memory_limit: str = "2GB", threads: int = 2, temp_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded by the run's settings, spilling to ``temp_directory``, in UTC."""
    config: dict[str, object] = {"memory_limit": memory_limit, "threads": threads}
    if temp_directory:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(config=config)
    con.execute("set TimeZone = 'UTC'")
    return con
