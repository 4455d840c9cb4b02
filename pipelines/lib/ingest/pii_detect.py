"""The SQL PII detector (``sql/ingest/pii_cards.sql``, ``pii_macros.sql``, ``pii_macros_runs.sql``)
from Python.

``install`` defines the macros ``pii_class(s)`` and ``pii_scrub(s, ipad, opad)`` (and their
helpers) on a connection, for SQL that runs them over whole columns. ``classify`` and ``scrub``
run them over a batch of values in a throwaway in-memory DuckDB, one query per batch: for tests,
the corpus judge and one-off checks. ``pipelines.lib.ingest.pii`` (``detect_class``,
``scrub_text``) is
the Python twin that finds the same spans.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from pipelines.lib.ingest.pii import hmac_pads
from pipelines.lib.lake.sql import connect, load_sql

# The cards' patterns and checks, the others, then the windows of a run and the public macros
# built on them (one file would pass the 20,000 bytes over which sqlfluff silently skips a file).
MACRO_FILES = ("ingest/pii_cards.sql", "ingest/pii_macros.sql", "ingest/pii_macros_runs.sql")


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Define the detector's macros (temporary: they live as long as the connection)."""
    for name in MACRO_FILES:
        con.execute(load_sql(name))


def _run(values: Sequence[str | None], expression: str, params: dict[str, object]) -> list:
    """``expression`` over ``value`` for every value, in order, as one query."""
    con = connect()
    try:
        install(con)
        table = pa.table(
            {
                "position": pa.array(range(len(values)), type=pa.int64()),
                "value": pa.array(values, type=pa.string()),
            }
        )
        con.register("pii_values", table)
        query = f"select {expression} from pii_values order by position"
        return [row[0] for row in con.execute(query, params).fetchall()]
    finally:
        con.close()


def classify(values: Sequence[str | None]) -> list[str | None]:
    """``pii_class`` of each value: the class of its first PII span, or None."""
    return _run(values, "pii_class(value)", {})


def scrub(values: Sequence[str | None], secret: bytes) -> list[str | None]:
    """``pii_scrub`` of each value: every PII span replaced by ``<class:h>``, h the first 16 hex
    characters of HMAC-SHA256(secret, span)."""
    ipad, opad = hmac_pads(secret)
    return _run(values, "pii_scrub(value, $ipad, $opad)", {"ipad": ipad, "opad": opad})
