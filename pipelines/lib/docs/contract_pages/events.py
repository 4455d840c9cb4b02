"""``docs/contracts/events.md``: every event type, field by field, as ingest stores it, the
columns ingest adds, and every reason a line is quarantined."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.lib.docs import markdown as md
from pipelines.lib.docs.contract_pages.facts import (
    TYPE_PATTERN,
    DocsError,
    Field,
    days,
    fields,
    handling,
    hive_keys,
    ledger_column,
    num,
    pattern,
    size,
    window,
)
from pipelines.lib.docs.contract_pages.stored_tables import StoredTable, stored_tables
from pipelines.lib.ingest.partition import IngestSettings
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.lake.paths import events_file, landing_dir, quarantine_file
from pipelines.lib.schemas.registry import EventSchema, accepted_versions, load_event_schemas
from pipelines.lib.schemas.stored_shape import ADDED_COLUMNS

EVENTS_PAGE = "contracts/events.md"

# What the columns ingest adds to every event table mean. The names and types come from the
# ingest SQL itself (see ``stored_tables``); a column added there without a line here, or a line
# here for a column that no longer exists, stops the rendering.
EXTRA_COLUMN_DOCS = {
    **ADDED_COLUMNS,
    "event_date": "The event date E: the UTC date of `timestamp_ms` (the Hive partition folder).",
}

# One line per reason code of ``pipelines.lib.ingest.reasons.REASONS``. ``{fields}`` are filled
# from code.
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


def extra_columns(
    schemas: Mapping[str, EventSchema], tables: Mapping[str, StoredTable]
) -> list[tuple[str, str, bool]]:
    """(name, DuckDB type, is a partition column) of the columns ingest adds to every event table;
    refuses when event tables disagree or a column has no description in ``EXTRA_COLUMN_DOCS``."""
    reference: list[tuple[str, str, bool]] | None = None
    for event_type, table in tables.items():
        declared = set(schemas[event_type].properties)
        extras = [(n, t, False) for n, t in table.columns.items() if n not in declared]
        extras += [(n, t, True) for n, t in table.partition_columns.items()]
        if reference is None:
            reference = extras
        elif extras != reference:
            raise DocsError(f"{event_type} adds other columns than the other event types: {extras}")
    found = {e[0]: e for e in reference or []}
    _require_docs(
        sorted(found),
        EXTRA_COLUMN_DOCS,
        "ingest adds column(s) {} to every event table: describe them in EXTRA_COLUMN_DOCS in "
        "pipelines/lib/docs/contract_pages/events.py",
        "EXTRA_COLUMN_DOCS describes column(s) ingest no longer adds: {}",
    )
    return list(found.values())


def _require_docs(
    names: Sequence[str], docs: Mapping[str, str], undocumented: str, stale: str
) -> None:
    """Refuse a name without a line in ``docs`` (``undocumented`` says which, as ``{}``) and a
    line in ``docs`` for no name (``stale``): the page must describe exactly what code has."""
    missing = [n for n in names if n not in docs]
    if missing:
        raise DocsError(undocumented.format(missing))
    left = set(docs) - set(names)
    if left:
        raise DocsError(stale.format(sorted(left)))


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
            parts.append(f"{sign} {num(spec[keyword])}")
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


def _required(field: Field) -> str:
    text = "yes" if field.required else "no"
    if field.required_with:
        text += " (with " + ", ".join(md.code(n) for n in field.required_with) + ")"
    return text


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
        pii_fields = [f.name for f in fields(doc) if f.spec.get("x-pii", "none") != "none"]
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
    for field in fields(doc):
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
                handling(field, _HANDLING),
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
        f"- stored at: `{pattern(events_file, schema.event_type)}`",
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
        "max_line_bytes": size(IngestSettings().max_line_bytes),
        "after": str(w.after),
        "before": str(w.before),
        "after_days": days(w.after),
        "before_days": days(w.before),
        "types": ", ".join(md.code(t) for t in schemas),
        "versions": "; ".join(f"`{t}` {', '.join(_accepted(s))}" for t, s in schemas.items()),
    }


def _reasons_list(schemas: Mapping[str, EventSchema]) -> str:
    _require_docs(
        REASONS,
        REASON_DOCS,
        "reason(s) {} have no meaning in REASON_DOCS in "
        "pipelines/lib/docs/contract_pages/events.py",
        "REASON_DOCS describes reason(s) that no longer exist: {}",
    )
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
            landing=pattern(landing_dir),
            events=pattern(events_file, TYPE_PATTERN),
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
            events=pattern(events_file, TYPE_PATTERN),
            partition_keys=", ".join(md.code(n) for n, _, hive in extras if hive),
            stored_keys=", ".join(
                md.code(k)
                for k in hive_keys(pattern(events_file, TYPE_PATTERN))
                if k not in {n for n, _, hive in extras if hive}
            ),
            table=md.table(["column", "stored as", "from", "meaning"], extra_rows),
        )
    )
    parts.append(
        _EVENTS_REASONS.format(
            quarantine=pattern(quarantine_file),
            reasons=_reasons_list(schemas),
            duplicates=ledger_column("duplicates"),
            blank_lines=ledger_column("blank_lines"),
        )
    )
    return "\n".join(parts).rstrip("\n") + "\n"
