"""What an event table really holds: one empty partition per event type pushed through the real
ingest SQL into a Parquet file and read back with DuckDB, so the pages never guess a stored type."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from pipelines.lib.docs.contract_pages.facts import SENTINEL, Field, fields
from pipelines.lib.ingest import pii, pii_policy
from pipelines.lib.ingest.check_tables import check_query, rows_view
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.partition import events_relation
from pipelines.lib.lake.paths import events_file
from pipelines.lib.lake.sql import load_sql, sql_identifier, sql_literal
from pipelines.lib.schemas.registry import EventSchema
from pipelines.lib.schemas.sql_compiler import compile_schema


@dataclass(frozen=True)
class StoredTable:
    """What an event table really holds: Parquet columns and the Hive partition columns."""

    columns: dict[str, str]  # name -> DuckDB type, in file order
    partition_columns: dict[str, str]  # added from the folder names, not stored in the file
    nested: dict[str, str]  # "items[].position" -> DuckDB type


def _describe(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, str]:
    # DESCRIBE takes a whole statement, not a value: `query` is our own SQL, never data.
    return {row[0]: row[1] for row in con.execute("describe " + query).fetchall()}


def _sql_path(field: Field) -> str:
    """The SQL expression of a (nested) field in a row, as ``items[1].position`` reads it."""
    out = sql_identifier(field.steps[0])
    for step in field.steps[1:]:
        out = f"{out}[1]" if step == "[]" else f"({out}).{sql_identifier(step)}"
    return out


def stored_tables(schemas: Mapping[str, EventSchema]) -> dict[str, StoredTable]:
    """Push an empty partition of each type through the ingest SQL into Parquet; read it back."""
    tables = {}
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(load_sql("ingest/create_staged.sql"))
        # The two small tables the events query joins; ingest registers them from Python.
        con.execute(
            "create table fates (file_id integer, line_no bigint, fate varchar, event_type varchar)"
        )
        con.execute("create table landing_files (file_id integer, landing_file varchar)")
        con.execute("create table pii_hashes (raw varchar, hashed varchar, hashed_prev varchar)")
        pii_policy.install(con)
        with tempfile.TemporaryDirectory(prefix="telemetry-docs-") as root:
            for event_type, schema in schemas.items():
                compiled = compile_schema(schema)
                con.execute(check_query(compiled), {"event_type": event_type})
                con.execute(rows_view(compiled))
                rows = events_relation(con, compiled, PiiKey(pii.DEV_KEY)).to_arrow_table()
                path = os.path.join(root, *events_file(event_type, SENTINEL).split("/"))
                os.makedirs(os.path.dirname(path))
                pq.write_table(rows, path)
                source = f"read_parquet({sql_literal(path)}, hive_partitioning = false)"
                columns = _describe(con, f"select * from {source}")
                hive = _describe(
                    con,
                    f"select * from read_parquet({sql_literal(path)}, hive_partitioning = true)",
                )
                nested = {
                    f.name: _describe(con, f"select {_sql_path(f)} from {source}").popitem()[1]
                    for f in fields(schema.document)
                    if len(f.steps) > 1 and columns[f.steps[0]].upper() != "VARCHAR"
                }
                tables[event_type] = StoredTable(
                    columns=columns,
                    partition_columns={n: t for n, t in hive.items() if n not in columns},
                    nested=nested,
                )
    finally:
        con.close()
    return tables
