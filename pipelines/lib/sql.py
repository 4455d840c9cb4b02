"""Load the project's SQL files from ``sql/``; values always travel as bound parameters."""

from __future__ import annotations

from functools import cache

from pipelines.lib.paths import sql_dir


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>`` (e.g. ``ingest/stage_lines.sql``)."""
    return (sql_dir() / name).read_text(encoding="utf-8")
