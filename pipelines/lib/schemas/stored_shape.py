"""The shape an event table is stored in: the columns ingest adds after a schema's own, and which
older versions fit the current table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.lib.schemas.sql_columns import Column, SchemaCompileError

if TYPE_CHECKING:
    from pipelines.lib.schemas.sql_compiler import CompiledSchema


def version_tag(version: str) -> str:
    """A version as part of an SQL name: 1.10.0 -> v1_10_0."""
    return "v" + version.replace(".", "_")


# The hashed identifier that, after a key rotation, also carries the previous key's hash.
BRIDGED_COLUMN = "user_id"
BRIDGE_COLUMN = "user_id_prev"

# Columns every event table adds after the schema's own, with their meaning (docs and the UI's
# column schema read them from here).
ADDED_COLUMNS = {
    "event_ts": "`timestamp_ms` as a UTC timestamp (the same instant).",
    "pii_key_id": "Fingerprint of the key that hashed this row's identifiers.",
    BRIDGE_COLUMN: "During the overlap after a PII key rotation: `user_id` hashed with the "
    "previous key (64 hex characters), so the user joins rows of the days before the rotation; "
    "null otherwise. See pii_retention.md.",
    "landing_dt": "Arrival date A: the `dt=` folder of the landing file the row was read from.",
    "landing_file": "That landing file, as a path relative to the lake root.",
    "landing_line": "Line number of the event in that file (the first line is 1).",
}


def _stored_as(column: Column) -> str | None:
    """What storage does to a value: hash it, scrub it, or keep it. An identifier is kept (and,
    like every stored string, run through the PII detector), as a field of an older version
    that declared no policy was."""
    return column.pii_handling if column.pii_handling in ("hash", "scrub") else None


def check_fits(version: CompiledSchema, current: CompiledSchema) -> None:
    """Refuse a version whose lines cannot be stored in the current table: each of its fields
    must be a column of the current version, stored with the same type and PII handling."""
    columns = {c.name: c for c in current.columns}
    for column in version.columns:
        now = columns.get(column.name)
        if now is None or (now.sql_type, _stored_as(now)) != (column.sql_type, _stored_as(column)):
            stored = "no column" if now is None else f"{now.sql_type} ({now.pii_handling})"
            raise SchemaCompileError(
                f"{version.event_type} {version.version}: field {column.name} "
                f"({column.sql_type}, {column.pii_handling}) does not fit the table of "
                f"{current.version} ({stored}); a change like this needs a new major version "
                "(run python -m pipelines.schemas check)"
            )
