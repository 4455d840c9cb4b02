"""Render the contract pages under ``docs/contracts/`` from the code that enforces the contract.

Everything a page states that the code also states (fields, types, constraints, stored column
types, PII classes, reason codes, window sizes, path patterns) is rendered here from that code, so
``python -m pipelines.docs --check`` (and ``tests/test_docs.py``) fails as soon as the two drift.
Only the prose is written in this module, as templates.

* ``events.md`` and ``partitioning.md`` are generated whole.
* ``pii_retention.md`` is written by hand; only the regions between
  ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` are generated.

The stored column types are not guessed: one empty partition per event type is pushed through the
real ingest SQL into a Parquet file and read back with DuckDB. No Dagster here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from pipelines.lib import markdown as md
from pipelines.lib import pii, pii_policy
from pipelines.lib.contracts.docs import JOINS_PAGE, QUALITY_PAGE, render_joins, render_quality
from pipelines.lib.ingest import (
    ADDED_COLUMNS,
    IngestSettings,
    events_relation,
    landing_dates,
    ledger_schema,
    reading_partitions,
)
from pipelines.lib.keyring import PiiKey
from pipelines.lib.landing import LANDING_SUFFIXES, RETIRED_MARKER
from pipelines.lib.ops.lifecycle import lifecycle_configuration
from pipelines.lib.ops.retention import Windows
from pipelines.lib.paths import (
    DATA_DOCS_DIR,
    contracts_file,
    events_file,
    landing_dir,
    ledger_file,
    quality_file,
    quarantine_file,
)
from pipelines.lib.reasons import REASONS
from pipelines.lib.rollups.docs import (
    ROLLUP_COLUMNS_PAGE,
    ROLLUPS_PAGE,
    output_schemas,
    render_rollup_columns,
    render_rollups,
)
from pipelines.lib.schemas import EventSchema, accepted_versions, load_event_schemas
from pipelines.lib.settings import DEFAULT_FIRST_DATE
from pipelines.lib.sql import load_sql
from pipelines.lib.sqlschema import check_query, compile_schema, rows_view

EVENTS_PAGE = "contracts/events.md"
PARTITIONING_PAGE = "contracts/partitioning.md"
PII_PAGE = "contracts/pii_retention.md"

# What the columns ingest adds to every event table mean. The names and types come from the
# ingest SQL itself (see ``stored_tables``); a column added there without a line here, or a line
# here for a column that no longer exists, stops the rendering.
EXTRA_COLUMN_DOCS = {
    **ADDED_COLUMNS,
    "event_date": "The event date E: the UTC date of `timestamp_ms` (the Hive partition folder).",
}

# One line per reason code of ``pipelines.lib.reasons.REASONS``. ``{fields}`` are filled from code.
REASON_DOCS = {
    "line_too_large": "the line is longer than `max_line_bytes`, by default {max_line_bytes}.",
    "not_utf8": "the line's bytes are not valid UTF-8.",
    "malformed_json": "the line is not strict JSON: a syntax error, a "
    "duplicate key, `NaN`/`Infinity`, a number that overflows a double, a lone surrogate.",
    "late_arrival": "the event date E is more than {after_days} before the arrival date A "
    "(E < A-{after}); kept by partition A.",
    "future_timestamp": "the event date E is more than {before_days} after the arrival date A "
    "(E > A+{before}); kept by partition A.",
    "unknown_event_type": "not a JSON object, or `event_type` is missing, not a string or not one "
    "of {types}.",
    "unknown_schema_version": "`schema_version` is not a version ingest accepts for the event type "
    "({versions}): a published version of the type's current major.",
    "schema_violation": "the event breaks its schema; `detail` lists every break as "
    "`<json-pointer>:<keyword>`.",
    "pii_in_field": "the event passes its schema, but a string it keeps as sent (an identifier "
    "such as `surface` or `items[].canonical_id`) holds PII: an e-mail address, an IP address, "
    "a phone, card or IBAN number, or the event's own raw `user_id`/`session_id` (or, in a "
    "scrubbed JSON object, PII written as a number), or, in a line of an older accepted version, "
    "misses the current version's pattern, enum or const (class `unshaped`); `detail` names the "
    "field and the class, never the value.",
    "conflicting_duplicate": "an earlier copy of the same `event_id` (in (dt, file name, line) "
    "order) has different content; the earlier copy is kept.",
}

_HANDLING = {
    "hash": "hashed (HMAC-SHA256)",
    "scrub": "scrubbed",
    "identifier": "identifier (PII in it quarantines the line)",
}
_PII_HANDLING = {
    "hash": "hashed: HMAC-SHA256, 64 hex characters",
    "scrub": "scrubbed: PII spans and the event's raw ids become typed hash tokens "
    "`<class:16 hex>`",
    "identifier": "kept as sent, held to its pattern or enum; a line whose value holds PII or "
    "the event's raw id is quarantined (`pii_in_field`)",
}
# A date no real partition has, to turn the path functions into patterns.
_SENTINEL = date(1, 2, 3)
_DATE_PATTERN = "YYYY-MM-DD"
_TYPE_PATTERN = "<event_type>"
_EXAMPLE_DAY = date(2025, 6, 4)


class DocsError(ValueError):
    """The code says something the documentation cannot render (yet): fix the docs module."""


# --- markdown helpers ----------------------------------------------------------------------------


def _num(value: Any) -> str:
    return json.dumps(value)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit} ({n} bytes)"
    return f"{n} bytes"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _day(origin: str, offset: int) -> str:
    return origin if offset == 0 else f"{origin}{offset:+d}"


# --- facts read from code ------------------------------------------------------------------------


def _pattern(path_of: Callable[..., str], *args: str) -> str:
    return path_of(*args, _SENTINEL).replace(_SENTINEL.isoformat(), _DATE_PATTERN)


def _hive_keys(rel: str) -> list[str]:
    return [part.split("=", 1)[0] for part in rel.split("/")[:-1] if "=" in part]


def _offsets(days_of: Callable[[date], list[date]]) -> list[int]:
    offsets = [(d - _EXAMPLE_DAY).days for d in days_of(_EXAMPLE_DAY)]
    if offsets != list(range(offsets[0], offsets[-1] + 1)):
        raise DocsError(f"{days_of.__name__} is not a contiguous range of days: {offsets}")
    return offsets


@dataclass(frozen=True)
class Window:
    """The late-arrival window, as the ingest code defines it."""

    reads: list[int]  # landing dates partition D reads, as offsets from D
    readers: list[int]  # partitions that read landing date A (and may own its lines), from A

    @property
    def before(self) -> int:
        """How far an event date may lie after its arrival date."""
        return self.readers[-1]

    @property
    def after(self) -> int:
        """How many days late a line may arrive."""
        return -self.readers[0]


def window() -> Window:
    w = Window(reads=_offsets(landing_dates), readers=_offsets(reading_partitions))
    if w.readers != sorted(-n for n in w.reads):
        raise DocsError(f"reading_partitions {w.readers} is not the inverse of landing_dates")
    return w


def _reason(name: str) -> str:
    if name not in REASONS:
        raise DocsError(f"the docs name reason {name!r}, which is not in REASONS any more")
    return md.code(name)


def _ledger_column(name: str) -> str:
    if name not in ledger_schema([]).names:
        raise DocsError(f"the docs name ledger column {name!r}, which ledger_schema does not have")
    return md.code(name)


@dataclass(frozen=True)
class StoredTable:
    """What an event table really holds: Parquet columns and the Hive partition columns."""

    columns: dict[str, str]  # name -> DuckDB type, in file order
    partition_columns: dict[str, str]  # added from the folder names, not stored in the file
    nested: dict[str, str]  # "items[].position" -> DuckDB type


def _describe(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, str]:
    # DESCRIBE takes a whole statement, not a value: `query` is our own SQL, never data.
    return {row[0]: row[1] for row in con.execute("describe " + query).fetchall()}


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
                path = os.path.join(root, *events_file(event_type, _SENTINEL).split("/"))
                os.makedirs(os.path.dirname(path))
                pq.write_table(rows, path)
                source = f"read_parquet({_lit(path)}, hive_partitioning = false)"
                columns = _describe(con, f"select * from {source}")
                hive = _describe(
                    con, f"select * from read_parquet({_lit(path)}, hive_partitioning = true)"
                )
                nested = {
                    f.name: _describe(con, f"select {f.sql_path()} from {source}").popitem()[1]
                    for f in _fields(schema.document)
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


def extra_columns(
    schemas: Mapping[str, EventSchema], tables: Mapping[str, StoredTable]
) -> list[tuple[str, str, bool]]:
    """(name, DuckDB type, is a partition column) of the columns ingest adds to every event table;
    refuses when event tables disagree or a column has no description in ``EXTRA_COLUMN_DOCS``."""
    reference: list[tuple[str, str, bool]] | None = None
    for event_type, table in tables.items():
        fields = set(schemas[event_type].properties)
        extras = [(n, t, False) for n, t in table.columns.items() if n not in fields]
        extras += [(n, t, True) for n, t in table.partition_columns.items()]
        if reference is None:
            reference = extras
        elif extras != reference:
            raise DocsError(f"{event_type} adds other columns than the other event types: {extras}")
    found = {e[0]: e for e in reference or []}
    undocumented = set(found) - set(EXTRA_COLUMN_DOCS)
    if undocumented:
        raise DocsError(
            f"ingest adds column(s) {sorted(undocumented)} to every event table: describe them in "
            "EXTRA_COLUMN_DOCS in pipelines/lib/docs.py"
        )
    stale = set(EXTRA_COLUMN_DOCS) - set(found)
    if stale:
        raise DocsError(f"EXTRA_COLUMN_DOCS describes column(s) ingest no longer adds: {stale}")
    return list(found.values())


# --- schema walking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    steps: tuple[str, ...]  # ("items", "[]", "position")
    spec: dict[str, Any]
    required: bool
    required_with: tuple[str, ...]

    @property
    def name(self) -> str:
        out = self.steps[0]
        for step in self.steps[1:]:
            out += step if step == "[]" else f".{step}"
        return out

    def sql_path(self) -> str:
        out = _ident(self.steps[0])
        for step in self.steps[1:]:
            out = f"{out}[1]" if step == "[]" else f"({out}).{_ident(step)}"
        return out


def _fields(node: dict[str, Any], steps: tuple[str, ...] = ()) -> Iterator[_Field]:
    required = set(node.get("required", []))
    together = node.get("dependentRequired", {})
    for name, spec in node.get("properties", {}).items():
        here = (*steps, name)
        yield _Field(here, spec, name in required, tuple(together.get(name, ())))
        yield from _inner_fields(spec, here)


def _inner_fields(spec: dict[str, Any], steps: tuple[str, ...]) -> Iterator[_Field]:
    if spec.get("properties"):
        yield from _fields(spec, steps)
    items = spec.get("items")
    if isinstance(items, dict):
        yield from _inner_fields(items, (*steps, "[]"))


def _types(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "any")
    return " | ".join(kind) if isinstance(kind, list) else kind


def json_type(spec: dict[str, Any]) -> str:
    """The JSON type of a schema node with every constraint on it, in one line."""
    parts = [_types(spec)]
    if "const" in spec:
        parts.append(f"= {md.code(json.dumps(spec['const']))}")
    if "enum" in spec:
        parts.append("one of " + ", ".join(md.code(json.dumps(v)) for v in spec["enum"]))
    for keyword, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if keyword in spec:
            parts.append(f"{sign} {_num(spec[keyword])}")
    for low, high, noun in (
        ("minLength", "maxLength", "length"),
        ("minItems", "maxItems", "items"),
        ("minProperties", "maxProperties", "keys"),
    ):
        if low in spec and high in spec:
            parts.append(f"{noun} {spec[low]}..{spec[high]}")
        elif low in spec:
            parts.append(f"{noun} ≥ {spec[low]}")
        elif high in spec:
            parts.append(f"{noun} ≤ {spec[high]}")
    if "pattern" in spec:
        parts.append(f"pattern {md.code(spec['pattern'])}")
    if "x-unique-by" in spec:
        parts.append(f"unique by {md.code(spec['x-unique-by'])}")
    if spec.get("additionalProperties") is False and "properties" in spec:
        parts.append("no other keys")
    if isinstance(spec.get("additionalProperties"), dict):
        parts.append(f"each value: ({json_type(spec['additionalProperties'])})")
    if isinstance(spec.get("items"), dict):
        parts.append(f"each item: ({json_type(spec['items'])})")
    return ", ".join(parts)


def _required(field: _Field) -> str:
    text = "yes" if field.required else "no"
    if field.required_with:
        text += " (with " + ", ".join(md.code(n) for n in field.required_with) + ")"
    return text


def _handling(field: _Field, table: Mapping[str, str]) -> str:
    handling = field.spec.get("x-pii-handling")
    if handling in ("hash", "scrub") and len(field.steps) > 1:
        # sqlschema hashes and scrubs top-level columns only; never document a hash or a scrub
        # that does not happen (the detector does read nested identifiers: pii_policy.py).
        raise DocsError(
            f"{field.name}: x-pii-handling on a nested field is not applied by ingest "
            "(pipelines/lib/sqlschema.py handles top-level columns only)"
        )
    if handling is None:
        return "—"
    if handling not in table:
        raise DocsError(f"{field.name}: no documentation for x-pii-handling {handling!r}")
    return table[handling]


# --- events.md -----------------------------------------------------------------------------------

_EVENTS_INTRO = """\
# Event contract

{note}

Producers write one event per line (JSON Lines, UTF-8, optionally gzip-compressed) into
`{landing}/`, where the date is the day the file arrived (see
[partitioning.md](partitioning.md)). Each event is one JSON object: its `event_type` picks one of
the schemas below and its `schema_version` must be one of the versions of that schema ingest
accepts; the line is checked against the schema of its own version and stored in the current
version's shape (the fields an older version lacks are null). The schemas live in
`schemas/events/` (JSON Schema 2020-12): every published version as `<type>/<version>.json`, the
current one linked as `<type>.json` (versioning rules: `python -m pipelines.schemas check`).
Ingest checks them with these rules:

- strict JSON only: RFC 8259 with no duplicate keys, no `NaN`/`Infinity`, no number that overflows
  a double, valid UTF-8 (no lone surrogates);
- `pattern` is an ECMA-262 regular expression, as JSON Schema requires: `$` matches only at the
  very end of the string;
- `x-unique-by: K` (our one extension): no two array items share the value of key `K`;
- a keyword the lake cannot check is refused when the schema loads, never silently ignored.

Lines that fail go to quarantine with a reason (see [Rejected events](#rejected-events)). Valid
events are stored, one Parquet file per event type and UTC day, at
`{events}`.

How to read the field tables:

- **JSON type**: the type the producer sends, with every constraint on it; `a..b` is inclusive.
- **required**: `no (with X)` means that when the field is present, `X` must be present too
  (`dependentRequired`).
- **stored as**: the DuckDB type of the Parquet column, as `DESCRIBE` shows it. Free-form objects
  are stored as JSON text; `items[].x` is field `x` of each element of the list `items`.
- **PII** and **handling**: the field's `x-pii` class and what ingest does to it before storage:
  hashed (keyed HMAC-SHA256, hex), scrubbed (e-mails, phones, IPs, cards and IBANs replaced by
  placeholders), or `—` (stored as sent). See [pii_retention.md](pii_retention.md).

## Event types

{summary}
"""

_EVENTS_EXTRAS = """\
## Columns every event table adds

After its schema fields (in schema order), every event file stores the columns below. The
folders of `{events}` are Hive partition keys: read with `hive_partitioning = true`, DuckDB
prunes on them and adds the keys the file does not store ({partition_keys}) as columns. The
others ({stored_keys}) are also stored in the file, with the same value.

{table}
"""

_EVENTS_REASONS = """\
## Rejected events

A line that cannot be stored goes to `{quarantine}` of the partition that owns it, redacted, with
exactly one reason. When several apply, the first in this list wins:

{reasons}

An exact copy of an event already kept (same `event_id`, same content) is not a rejection: it is
dropped and counted in the ledger column {duplicates}. Nor is a blank line (nothing but spaces,
tabs and carriage returns): it is counted in the ledger column {blank_lines} of the partition of
its landing date, and stored nowhere, so a file of millions of them costs a count, not a row each.
The ledger also counts every reason per landing file, in `quarantined_<reason>` columns.
"""


def _summary_table(schemas: Mapping[str, EventSchema]) -> str:
    rows = []
    for event_type, schema in schemas.items():
        doc = schema.document
        fields = list(_fields(doc))
        pii_fields = [f.name for f in fields if f.spec.get("x-pii", "none") != "none"]
        rows.append(
            [
                f"[`{event_type}`](#{event_type})",
                doc.get("title", ""),
                md.code(schema.version),
                str(len(doc["properties"])),
                ", ".join(md.code(n) for n in pii_fields) or "—",
            ]
        )
    return md.table(["event type", "title", "version", "fields", "PII fields"], rows)


def _event_section(schema: EventSchema, table: StoredTable) -> str:
    doc = schema.document
    rows = []
    for field in _fields(doc):
        top = field.steps[0]
        if len(field.steps) == 1:
            stored = table.columns[top]
        elif field.name in table.nested:
            stored = table.nested[field.name]
        else:
            stored = f"inside {md.code(top)} (JSON text)"
        rows.append(
            [
                md.code(field.name),
                json_type(field.spec),
                _required(field),
                md.code(stored),
                field.spec.get("x-pii", "none"),
                _handling(field, _HANDLING),
                field.spec.get("description", ""),
            ]
        )
    closed = (
        " Any other top-level field is a schema violation (`additionalProperties: false`)."
        if doc.get("additionalProperties") is False
        else ""
    )
    lines = [
        f"## {schema.event_type}",
        "",
        f"**{doc.get('title', schema.event_type)}.** {doc.get('description', '')}{closed}",
        "",
        f"- `$id`: `{doc.get('$id', '—')}`",
        f"- schema version: `{schema.version}` (current); accepted: "
        + ", ".join(md.code(v) for v in _accepted(schema)),
        f"- schema file: `schemas/events/{schema.event_type}/{schema.version}.json`",
        f"- stored at: `{_pattern(events_file, schema.event_type)}`",
        "",
        md.table(
            ["field", "JSON type", "required", "stored as", "PII", "handling", "description"],
            rows,
        ),
        "",
    ]
    for example in doc.get("examples", []):
        lines += [
            "Example:",
            "",
            "```json",
            json.dumps(example, indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    return "\n".join(lines)


def _accepted(schema: EventSchema) -> list[str]:
    """The versions ingest accepts for the schema's type, in the registry the schema is from."""
    versions = accepted_versions(schema.path.parent).get(schema.event_type, [schema])
    return [s.version for s in versions]


def _reason_values(schemas: Mapping[str, EventSchema]) -> dict[str, str]:
    w = window()
    return {
        "max_line_bytes": _size(IngestSettings().max_line_bytes),
        "after": str(w.after),
        "before": str(w.before),
        "after_days": _days(w.after),
        "before_days": _days(w.before),
        "types": ", ".join(md.code(t) for t in schemas),
        "versions": "; ".join(f"`{t}` {', '.join(_accepted(s))}" for t, s in schemas.items()),
    }


def _reasons_list(schemas: Mapping[str, EventSchema]) -> str:
    missing = [r for r in REASONS if r not in REASON_DOCS]
    if missing:
        raise DocsError(
            f"reason(s) {missing} have no meaning in REASON_DOCS in pipelines/lib/docs.py"
        )
    stale = set(REASON_DOCS) - set(REASONS)
    if stale:
        raise DocsError(f"REASON_DOCS describes reason(s) that no longer exist: {sorted(stale)}")
    values = _reason_values(schemas)
    return "\n".join(
        f"{i}. `{r}`: {REASON_DOCS[r].format(**values)}" for i, r in enumerate(REASONS, 1)
    )


def render_events(schemas: Mapping[str, EventSchema] | None = None) -> str:
    """``docs/contracts/events.md``: every event type, field by field, as ingest stores it."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    tables = stored_tables(schemas)
    extras = extra_columns(schemas, tables)
    parts = [
        _EVENTS_INTRO.format(
            note=md.generated_note("`schemas/events/*.json` and the ingest code"),
            landing=_pattern(landing_dir),
            events=_pattern(events_file, _TYPE_PATTERN),
            summary=_summary_table(schemas),
        )
    ]
    parts += [_event_section(schemas[t], tables[t]) for t in schemas]
    extra_rows = [
        [
            md.code(name),
            md.code(kind),
            "folder name (Hive partition)" if from_folder else "file",
            EXTRA_COLUMN_DOCS[name],
        ]
        for name, kind, from_folder in extras
    ]
    parts.append(
        _EVENTS_EXTRAS.format(
            events=_pattern(events_file, _TYPE_PATTERN),
            partition_keys=", ".join(md.code(n) for n, _, hive in extras if hive),
            stored_keys=", ".join(
                md.code(k)
                for k in _hive_keys(_pattern(events_file, _TYPE_PATTERN))
                if k not in {n for n, _, hive in extras if hive}
            ),
            table=md.table(["column", "stored as", "from", "meaning"], extra_rows),
        )
    )
    parts.append(
        _EVENTS_REASONS.format(
            quarantine=_pattern(quarantine_file),
            reasons=_reasons_list(schemas),
            duplicates=_ledger_column("duplicates"),
            blank_lines=_ledger_column("blank_lines"),
        )
    )
    return "\n".join(parts).rstrip("\n") + "\n"


# --- partitioning.md -----------------------------------------------------------------------------

_PARTITIONING = """\
# Partitioning, late arrivals and idempotency

{note}

## Layout

Paths are relative to the lake root, a local folder (default `data/lake`) or `s3://bucket/prefix`,
and use `/` on every backend.

```text
<lake root>/
{tree}
```

{zones}

`<event_type>` is one of {types}.

## Naming rules

- Partition folders are Hive-style `key=value` ({hive_keys}), so DuckDB prunes on them and, with
  `hive_partitioning = true`, adds them as columns.
- Every date is a UTC calendar day written `YYYY-MM-DD` (ISO 8601).
- Landing files sit directly in `{landing}/` (no sub-folders) and end in {suffixes}; other names
  (an upload's temporary file, a dot-file) are not landing files and are ignored. The `dt=` folder
  is the file's **arrival date** A: the UTC day it was delivered, whatever the events inside say.
- Every landing file gets a ledger row, read or not. Whether it is gzip is decided by its first
  two bytes (`1f 8b`), not its name: a plain file named `.gz` is read as plain text, gzip data
  named `.jsonl` is inflated, and either mismatch is noted in {file_errors} (several
  concatenated gzip members are fine). A symbolic link is followed only when it resolves inside
  `landing/`; one leading elsewhere or to nothing, a folder, or a file that cannot be opened is
  not read, and {file_errors} says why. A name that is not UTF-8 is recorded with each
  undecodable byte written as `\\xNN` (`caf\\xe9.jsonl`). The `landing_files_read` check warns
  about every file with a {file_errors} note.
- A partition is a folder, read whole (every `*.parquet` in it) and replaced whole: a build
  writes one file named `{part}`, even when it has no rows, and publishes it as the folder's only
  file; compaction may rewrite an event partition into several sorted `part-NNNNN-<tag>.parquet`
  files (see [../operations.md](../operations.md)). Nothing is ever appended.
- While a partition is being written its new files sit under `.staging/` at the lake root (a
  day's ingest tables under `_publish/staging/`), which no table's glob matches, and the folder is
  swapped in at once (on Linux: readers see every old file or every new one, never a mix).

## Days are UTC

An event's date E is the UTC date of its `timestamp_ms`; `event_ts` stores the same instant as a
UTC timestamp, and DuckDB runs with `TimeZone = 'UTC'`. Partitions are daily UTC partitions from
`TELEMETRY_FIRST_DATE` (default {first_date}). Partition D is built by one run that writes every
`event_date=D` file: one per event type, the quarantine and the ledger.

## The late-arrival window

Partition D reads the landing folders {reads}: {reads_why}. Conversely a file that arrives on A is
read by partitions {readers}, and each of its lines belongs to exactly one of them:

- a line belongs to its event date E when E is within [{own_from}, {own_to}], the partitions that
  read A;
- otherwise partition A keeps it, in quarantine: {late} when E < {own_from}, {future} when
  E > {own_to};
- a line with no readable event date (not JSON, or no numeric `timestamp_ms` in range) belongs
  to A, where it is quarantined for whatever is wrong with it.

For example, with A = {example}:

{example_table}

So partition D is complete only once landing {last_read} is complete, and a file that lands on A
after some of the partitions {readers} were built is picked up only when they are built again.
The ledger column {late_rows} counts the rows of D that arrived after D.

## Deduplication

`event_id` identifies an event. Among the lines partition D owns (every event type, every landing
file it reads) that passed all checks, the first copy of an `event_id` in (landing `dt`, file
name, line number) order is kept. A later copy with the same content (the same value in every
stored field, whatever the key order or spacing) is dropped and counted in the ledger column
{duplicates}; a later
copy with different content is quarantined as {conflicting}. `event_id`s are compared exactly
(case matters), and copies whose timestamps fall on different days are in different partitions,
so they are never compared.

## Atomic replace

Every output file is written whole, then published in one step, so a reader sees the previous
version or the new one and never a half-written file. The seven tables of a day (the five event
tables, the quarantine and the ledger) are published as one unit (`pipelines/lib/publish.py`):

1. every table is written whole under `_publish/staging/event_date=D.<publish id>/`, the publish
   id in each Parquet footer (locally flushed to disk; on S3 one object per table);
2. the journal `_publish/event_date=D.json`, naming every staged folder and its partition, is
   written atomically: the commit point;
3. each partition folder is swapped in (locally one rename exchange; on S3 a server-side copy
   over `part-00000.parquet`);
4. the journal is removed, then the staging.

A run that stops before the journal leaves every table of the day at its previous version; one
that stops after it leaves the journal, which the next run of the day, a contracts or rollups run
and the `day_publish_recovery` sensor roll forward before anything reads the day. Once that has
run, the ledger and the tables describe the same version. Each fault and what recovery does:
[../operations.md](../operations.md#atomic-day-publish).

## Idempotency

Building partition D again reads the same landing files and overwrites the same paths with the
same rows (events ordered by `timestamp_ms`, then `event_id`), as long as landing
{reads_range} and the PII key have not changed. Nothing is appended and no second part file is
created, so retries and backfills are safe. A different PII key gives different hashes and a
different `pii_key_id`.
"""


def _zones() -> list[tuple[str, str]]:
    landing = _pattern(landing_dir)
    return [
        (
            f"{landing}/<name>{LANDING_SUFFIXES[0]}",
            "raw lines as producers sent them, raw identifiers included",
        ),
        (_pattern(events_file, _TYPE_PATTERN), "valid, deduplicated, hashed events of one day"),
        (_pattern(quarantine_file), "rejected lines of one day, redacted, with their reason"),
        (_pattern(ledger_file), "per landing file: where each of its lines went"),
        (_pattern(contracts_file), "every contract violation of one day, one row each"),
        (_pattern(quality_file), "every contract rule's rate for one day"),
        (
            "rollups/<name>/<event_date|week_start|month_start>=YYYY-MM-DD/part-00000.parquet",
            "one rollup of one day, week or month (see rollups.md)",
        ),
        (f"{DATA_DOCS_DIR}/index.html", "the Great Expectations Data Docs of the latest run"),
    ]


def _tree() -> str:
    entries = [path for path, _ in _zones()]
    return "\n".join(
        ("└── " if i == len(entries) - 1 else "├── ") + path for i, path in enumerate(entries)
    )


def render_partitioning(schemas: Mapping[str, EventSchema] | None = None) -> str:
    """``docs/contracts/partitioning.md``: layout, window, ownership, dedup, atomicity."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    w = window()
    reads = [_day("D", n) for n in w.reads]
    why = []
    if w.reads[0] < 0:
        why.append(f"{', '.join(reads[: -w.reads[0]])} for clocks running ahead of UTC")
    if w.reads[-1] > 0:
        why.append(f"{', '.join(reads[-w.reads[-1] :])} for lines that arrive late")
    example = _EXAMPLE_DAY
    own_from, own_to = (example + timedelta(days=n) for n in (w.readers[0], w.readers[-1]))
    day = timedelta(days=1)
    example_rows = [
        [f"{own_from - day} or earlier", f"{example} (quarantine)", _reason("late_arrival")],
        [f"{own_from} .. {own_to}", "E (its own day)", "stored (or rejected for another reason)"],
        [f"{own_to + day} or later", f"{example} (quarantine)", _reason("future_timestamp")],
        ["unreadable", f"{example} (quarantine)", "whatever is wrong with the line"],
    ]
    paths = (
        _pattern(landing_dir) + "/",
        _pattern(events_file, _TYPE_PATTERN),
        _pattern(ledger_file),
    )
    hive = list(dict.fromkeys(k for rel in paths for k in _hive_keys(rel)))
    text = _PARTITIONING.format(
        note=md.generated_note("the ingest code (window sizes, reasons, paths)"),
        tree=_tree(),
        zones=md.table(
            ["zone", "holds"], [[md.code(p.split("/", 1)[0] + "/"), w] for p, w in _zones()]
        ),
        types=", ".join(md.code(t) for t in schemas),
        hive_keys=", ".join(md.code(k) for k in hive),
        landing=_pattern(landing_dir),
        suffixes=" or ".join(md.code(s) for s in LANDING_SUFFIXES),
        part=_pattern(events_file, _TYPE_PATTERN).rsplit("/", 1)[-1],
        first_date=DEFAULT_FIRST_DATE.isoformat(),
        reads=" .. ".join((reads[0], reads[-1])),
        reads_range=f"{reads[0]} .. {reads[-1]}",
        reads_why="; ".join(why),
        readers=f"{_day('A', w.readers[0])} .. {_day('A', w.readers[-1])}",
        own_from=_day("A", w.readers[0]),
        own_to=_day("A", w.readers[-1]),
        late=_reason("late_arrival"),
        future=_reason("future_timestamp"),
        example=example.isoformat(),
        example_table=md.table(["event date E", "belongs to partition", "outcome"], example_rows),
        last_read=reads[-1],
        late_rows=_ledger_column("rows_landed_late"),
        duplicates=_ledger_column("duplicates"),
        file_errors=_ledger_column("file_errors"),
        conflicting=_reason("conflicting_duplicate"),
    )
    return text.rstrip("\n") + "\n"


# --- pii_retention.md (generated regions only) ---------------------------------------------------


def render_pii_table(schemas: Mapping[str, EventSchema] | None = None) -> str:
    """Every field with ``x-pii`` other than ``none``, across event types."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    rows = [
        [
            md.code(event_type),
            md.code(field.name),
            field.spec["x-pii"],
            _handling(field, _PII_HANDLING).replace("—", "stored as sent"),
        ]
        for event_type, schema in schemas.items()
        for field in _fields(schema.document)
        if field.spec.get("x-pii", "none") != "none"
    ]
    return md.table(["event type", "field", "PII class", "handling"], rows)


def render_pii_rules() -> str:
    """The PII constants of the code, as a list."""
    quarantine_keys = ", ".join(md.code(k) for k in sorted(pii.HASHED_KEYS))
    return "\n".join(
        [
            f"- Minimum key length: {pii.MIN_KEY_BYTES} bytes (`TELEMETRY_PII_KEY`).",
            f"- `pii_key_id` of data hashed with the public development key: "
            f"`{pii.key_id(pii.DEV_KEY)}`. Data with this key id is not pseudonymised.",
            "- Placeholders of the free-text scrubber: "
            + ", ".join(md.code(p) for p in pii.PLACEHOLDERS)
            + ".",
            f"- Keys whose values are hashed wherever they appear in a quarantined line: "
            f"{quarantine_keys}.",
            f"- Redacted text kept per quarantined line: at most "
            f"{_size(IngestSettings().quarantine_text_bytes)} (`text_truncated` says when cut).",
        ]
    )


# The prefix the rendered lifecycle example uses (a lake at s3://<bucket>/lake).
_LIFECYCLE_EXAMPLE_PREFIX = "lake/"


def render_retention_windows() -> str:
    """The retention windows (``Windows``' defaults) by zone, with the setting that changes each."""
    w = Windows()
    rows = [
        [
            "`landing/`",
            "raw lines, raw identifiers",
            f"until {_days(w.landing_days_after_materialised)} after the last partition reading "
            f"the date was materialised; then a `{RETIRED_MARKER}` tombstone",
            "`landing_days_after_materialised`",
        ],
        [
            "`events/` (all types but `error`)",
            "hashed and scrubbed events",
            _days(w.events_days),
            "`events_days`",
        ],
        [
            "`events/event_type=error/`",
            "error events",
            f"{_days(w.errors_days)}; then only `severity = 'critical'` rows, until "
            f"{_days(w.critical_errors_days)}",
            "`errors_days`, `critical_errors_days`",
        ],
        ["`quarantine/`", "redacted rejected lines", _days(w.quarantine_days), "`quarantine_days`"],
        ["`contracts/`", "contract violations", _days(w.contracts_days), "`contracts_days`"],
        ["`quality/`", "contract rates per day", _days(w.quality_days), "`quality_days`"],
        [
            "`ledger/`",
            "counts per landing file, no identifiers",
            _days(w.ledger_days),
            "`ledger_days`",
        ],
        [
            "`rollups/`",
            "aggregates, no identifiers",
            f"{_days(w.rollups_days)}, counted from the last day of the period",
            "`rollups_days`",
        ],
        ["`ops/`, `reports/`", "run reports, Data Docs", "not managed: kept", "—"],
    ]
    minimum = window().after
    return (
        md.table(["zone", "holds", "kept", "setting of the `retention` resource"], rows)
        + f"\n\nA window shorter than {_days(minimum)} (the late-arrival window, "
        "`READS_DAYS_AFTER`) is refused: the run fails before it lists anything, naming the "
        "setting."
    )


def render_retention_lifecycle() -> str:
    """The S3 lifecycle configuration for the default windows, for a lake at ``s3://B/lake``."""
    configuration = lifecycle_configuration(_LIFECYCLE_EXAMPLE_PREFIX)
    return "```json\n" + json.dumps(configuration, indent=2) + "\n```"


def _region_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated:{re.escape(name)} -->\n).*?(\n<!-- /generated:{re.escape(name)} -->)",
        re.DOTALL,
    )


def splice(text: str, regions: Mapping[str, str]) -> str:
    """Replace the body of every ``<!-- generated:NAME -->`` region; refuses a missing marker."""
    for name, body in regions.items():
        pattern = _region_pattern(name)
        if len(pattern.findall(text)) != 1:
            raise DocsError(
                f"expected exactly one <!-- generated:{name} --> ... "
                f"<!-- /generated:{name} --> region"
            )
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def render_pii_page(current: str, schemas: Mapping[str, EventSchema] | None = None) -> str:
    """``docs/contracts/pii_retention.md``: the hand-written page with its regions regenerated."""
    return splice(
        current,
        {
            "pii-rules": render_pii_rules(),
            "pii-table": render_pii_table(schemas),
            "retention-windows": render_retention_windows(),
            "retention-lifecycle": render_retention_lifecycle(),
        },
    )


# --- the pages -----------------------------------------------------------------------------------


def expected_pages(
    docs_root: Path, schemas: Mapping[str, EventSchema] | None = None
) -> dict[str, str]:
    """Page (relative to ``docs/``) -> the text it must have."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    pii_path = docs_root / PII_PAGE
    if not pii_path.is_file():
        raise DocsError(f"{pii_path} is missing: it is written by hand, restore it from git")
    rollup_schemas = output_schemas()  # one run of every model for the page and its JSON twin
    return {
        EVENTS_PAGE: render_events(schemas),
        JOINS_PAGE: render_joins(),
        QUALITY_PAGE: render_quality(schemas),
        ROLLUPS_PAGE: render_rollups(rollup_schemas),
        ROLLUP_COLUMNS_PAGE: render_rollup_columns(rollup_schemas),
        PARTITIONING_PAGE: render_partitioning(schemas),
        PII_PAGE: render_pii_page(pii_path.read_text(encoding="utf-8"), schemas),
    }


def stale_pages(docs_root: Path, expected: Mapping[str, str]) -> list[str]:
    stale = []
    for page, text in expected.items():
        path = docs_root / page
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(page)
    return stale


def write_pages(docs_root: Path, expected: Mapping[str, str]) -> list[str]:
    """Write the pages that changed; returns them."""
    changed = stale_pages(docs_root, expected)
    for page in changed:
        path = docs_root / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[page], encoding="utf-8")
    return changed
