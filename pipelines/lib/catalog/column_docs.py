"""What every column of the analysts' catalog means: the text of its ``COMMENT ON COLUMN``.

Read from the code that defines each table wherever that code already says it, so a catalog
comment and a contract page never disagree:

* events: the event schemas' ``description`` of each field (current version first, then the
  older versions the table still holds), and ``EXTRA_COLUMN_DOCS`` for the columns ingest adds
  (the table of docs/contracts/events.md);
* rollups: ``lib/rollups/columns.py`` through ``definition`` (docs/contracts/rollups.md);
* quality: the tables below, whose schemas (``VIOLATIONS_SCHEMA``, ``QUALITY_SCHEMA``,
  ``QUARANTINE_SCHEMA``, ``ledger_schema``) carry no prose of their own.

``tests/catalog/test_column_docs.py`` fails when a table gains a column without a line here (or this
describes one that no longer exists), so the catalog never shows a column without a comment.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from pipelines.lib.catalog.tiers import EVENTS, QUALITY, ROLLUPS
from pipelines.lib.docs.contract_pages.events import EXTRA_COLUMN_DOCS
from pipelines.lib.ingest.erased_users import ERASED
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.rollups.columns import CHANGE, definition
from pipelines.lib.rollups.run import GRAIN_KEYS, MODELS_BY_NAME
from pipelines.lib.schemas.registry import accepted_versions, event_types, load_event_schemas

# The Hive folder key every quality table is partitioned by, as the catalog types it.
_DAY = (
    "The day D the row belongs to (the partition folder event_date=YYYY-MM-DD, typed DATE): "
    "filter on it to read only those days."
)

VIOLATIONS = {
    "event_date": _DAY,
    "family": "The contract family the rule belongs to: completeness, consistency, validity or "
    "timeliness (docs/contracts/quality.md).",
    "rule": "The rule the event broke: a Great Expectations expectation of its type's suite, a "
    "join rule of docs/contracts/joins.md, or a timeliness rule.",
    "event_type": "The offending event's type.",
    "event_id": "The offending event's event_id (null where it has none).",
    "request_id": "The request_id it carries, to join with the request's other events.",
    "detail": "What was wrong, in a few words (the value or the partner that is missing); "
    "identifiers in it are hashed as stored.",
}

RATES = {
    "event_date": _DAY,
    "family": "The contract family: completeness, consistency, validity or timeliness.",
    "rule": "The rule the row counts; the family's own name on its summary row.",
    "scope": "family (the gated rate of the whole family), rule (one rule's rate) or reported "
    "(a rate shown beside the gate, never gated).",
    "checked": "Events (or lines) the rule judged that day.",
    "failed": "Those that broke it.",
    "rate": "(checked - failed) / checked: the share that holds; the family's is gated by its "
    "check.",
}

QUARANTINE = {
    "event_date": _DAY + " The partition that owns the line: its event date, or its arrival date "
    "when the event date is unreadable or outside the late-arrival window.",
    "landing_file": "The landing file the line was read from, relative to the lake root.",
    "landing_dt": "Arrival date A: the dt= folder of that landing file.",
    "line_no": "Line number in that file (the first line is 1).",
    "line_bytes": "Length of the raw line in bytes.",
    "reason": "Why the line was rejected: one reason code of docs/contracts/events.md "
    "(Rejected events).",
    "detail": "The specifics of the reason (e.g. every schema break as <json-pointer>:<keyword>), "
    "scrubbed of PII.",
    "event_type": "The event_type the line claimed, when it could be read.",
    "event_id": "The event_id the line carried, when it is a valid UUID.",
    "event_date_read": "The UTC date of the line's timestamp_ms, when it could be read.",
    "text": "The line, redacted: identifiers hashed, free text scrubbed, cut to the configured "
    "size.",
    "text_truncated": "True when text was cut short.",
    "pii_key_id": "Fingerprint of the key that hashed the identifiers in text and detail.",
}

LEDGER = {
    "event_date": _DAY,
    "landing_file": "A landing file partition D read (one row per file, read or not).",
    "landing_dt": "Its arrival date A (the dt= folder).",
    "file_bytes": "Its size in bytes.",
    "file_lines": "Lines read from it.",
    "file_truncated": "True when the file could not be read to its end (corrupt gzip, an error "
    "opening it).",
    "file_errors": "What was wrong with the file (a name/content mismatch, a symlink out of "
    "landing/, an open error); null when nothing was.",
    "lines_taken": "Lines of the file partition D owns: rows_written + quarantined + duplicates "
    f"+ {ERASED} + blank_lines.",
    "rows_written": "Of those, the events stored as rows of D.",
    "quarantined": "Of those, the lines quarantined (any reason).",
    "duplicates": "Of those, exact copies of an event already kept, dropped.",
    ERASED: "Of those, valid lines of users erased at their request, not stored.",
    "blank_lines": "Blank lines of the file (counted by the partition of its arrival date).",
    "rows_landed_late": "Rows of D that arrived after D (landing_dt > event_date).",
    "pii_key_id": "Fingerprint of the key that hashed partition D's identifiers.",
}
_LEDGER_ROWS = "Of rows_written, the {name} events."
_LEDGER_REASON = "Of quarantined, the lines quarantined as {name}."

QUALITY_TABLES = {
    "contract_violations": VIOLATIONS,
    "contract_rates": RATES,
    "quarantine": QUARANTINE,
    "ledger": LEDGER,
}

_PARTITION_KEY = (
    "The first day of the period (the partition folder {key}=YYYY-MM-DD, typed DATE): filter on "
    "it to read only those periods."
)


def ledger_columns() -> dict[str, str]:
    """The ledger's columns, the per-type and per-reason counts included."""
    return {
        **LEDGER,
        **{f"rows_{t}": _LEDGER_ROWS.format(name=t) for t in event_types()},
        **{f"quarantined_{r}": _LEDGER_REASON.format(name=r) for r in REASONS},
    }


@functools.cache
def event_columns(event_type: str) -> dict[str, str]:
    """Every column an event table may hold: its fields in every version it still holds (the
    current version's text first), then the columns ingest adds."""
    current = load_event_schemas()[event_type]
    versions = [current, *reversed(accepted_versions().get(event_type, []))]
    described: dict[str, str] = {}
    for schema in versions:
        for name, spec in schema.properties.items():
            described.setdefault(name, spec.get("description", ""))
    return {**described, **EXTRA_COLUMN_DOCS}


def table_columns(schema: str, table: str) -> dict[str, str]:
    """Column -> description of every column ``schema.table`` is known to have."""
    if schema == EVENTS:
        return event_columns(table)
    if schema == ROLLUPS:
        model = MODELS_BY_NAME[table]
        key = GRAIN_KEYS[model.grain]
        return {**model.columns, key: _PARTITION_KEY.format(key=key)}
    if schema == QUALITY:
        return ledger_columns() if table == "ledger" else dict(QUALITY_TABLES[table])
    raise ValueError(f"no column descriptions for schema {schema!r}")


def describe(schema: str, table: str, column: str) -> str | None:
    """What ``column`` of ``schema.table`` holds, or None when nothing here says."""
    if schema == ROLLUPS:
        model = MODELS_BY_NAME[table]
        if column == GRAIN_KEYS[model.grain]:
            return _PARTITION_KEY.format(key=column)
        # The rollup's own definitions, the weekly and monthly *_change columns included.
        return definition(model, column)
    return table_columns(schema, table).get(column) or None


def fingerprint(tables: Mapping[str, list[str]]) -> str:
    """A short hash of every description of ``tables`` (schema -> table names): it changes when
    a comment the catalog writes would."""
    described = {f"{s}.{t}": table_columns(s, t) for s, names in tables.items() for t in names}
    # The weekly and monthly *_change columns are described by one text, not listed per model.
    text = json.dumps([described, CHANGE], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
