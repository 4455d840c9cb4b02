"""The PII policy of the stored strings, as SQL over ingest's check tables.

Every string a current schema allows declares ``x-pii-handling`` (``python -m pipelines.schemas
check`` enforces it):

* ``hash``: keyed-hashed before storage (``sql/ingest/pii_hashes.sql``);
* ``scrub``: free text; every PII span the detector finds (``sql/ingest/pii_macros.sql``), and the
  event's own raw identifiers, are replaced by a typed hash token ``<class:16 hex>``, so analysts
  still group on them;
* ``identifier``: kept as sent, but held to a pattern or an enum, and run through the detector:
  a line whose identifier holds PII (or the event's own raw identifier) is quarantined as
  ``pii_in_field``, its ``detail`` naming the field and the PII class, never the value.

Lines of older versions (``x-accepts-majors``) are checked against their own schema, then held to
the current policy, since the policy is a property of the stored column: their kept strings go
through the detector, and each identifier must also meet the current version's shape (its
``pattern``, ``enum`` or ``const``; the version's own ``schema_version`` aside), which the older
schema may lack (1.x has no pattern on ``region``, ``surface``, ...). A schema-valid older line
whose identifier does not is quarantined as ``pii_in_field``, not ``schema_violation``: the line
meets the schema it names, and what it breaks is the policy of the stored column (a name and a
street address in ``region`` is what that rule keeps out). ``detail`` names the field and the
class ``unshaped`` (``region holds unshaped``), never the value; when the detector also classes
the same field, its class is named instead (``surface holds email``). Only the older versions'
lines are tested, and only on the fields whose shape changed, so a clean day of current lines
pays nothing for it (``unshaped_query``). The SQL is structural: column names come from the
schemas, values are bound (a pattern or enum member is inlined as a quoted literal, like the
schema check's).

DuckDB inlines a macro wherever it is called, and planning the detector costs about 0.1 s a
call: so every type's kept strings are first gathered into one table of candidates (the values a
cheap test cannot clear), and the detector runs once, over that table (``pii_field_hits.sql``).
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from pipelines.lib.ingest import pii_detect
from pipelines.lib.lake.sql import load_sql, sql_literal
from pipelines.lib.schemas.registry import EventSchema

HASH, SCRUB = "hash", "scrub"
# The class named in ``detail`` for an older line's identifier that misses the current shape.
UNSHAPED = "unshaped"
# The shape keywords an identifier is held to, and the field that names a line's version (an
# older line differs there by definition, so it is not held to the current const).
SHAPE_KEYWORDS = ("pattern", "enum", "const")
VERSION_FIELD = "schema_version"
# The order (n) of an identifier tested for shape but not read by the detector: after them all.
_UNDETECTED_ORDER = 1000
# The raw identifiers of an event that its free text and its identifiers must not repeat: only
# those of at least this many characters, since shorter ids ("home", "42") are ordinary words.
MIN_RAW_ID_CHARS = 6


def install(con: duckdb.DuckDBPyConnection) -> None:
    """The detector's macros (``pii_class``, ``pii_scrub``), then the policy's built on them."""
    for name in pii_detect.MACRO_FILES:
        con.execute(load_sql(name))
    con.execute(load_sql("ingest/pii_second_look.sql"))
    con.execute(load_sql("ingest/pii_policy_macros.sql"))


def _policy(spec: dict[str, Any]) -> str | None:
    return spec.get("x-pii-handling")


def hashed_columns(schema: EventSchema) -> list[str]:
    return [n for n, s in schema.properties.items() if _policy(s) == HASH]


def scrubbed_columns(schema: EventSchema) -> list[str]:
    return [n for n, s in schema.properties.items() if _policy(s) == SCRUB]


def json_scrubbed_columns(schema: EventSchema) -> list[str]:
    """Scrubbed columns stored as JSON text (free-form objects such as ``filters``)."""
    return [n for n in scrubbed_columns(schema) if schema.properties[n].get("type") == "object"]


# A pattern that fixes a UUID-like shape: hex digits only, in fixed-length groups of at most 12
# joined by dashes. The detector never finds PII there (a dash joins its neighbours into one
# word, and no group is long enough to be a card or a phone), so it is not asked.
_UUID_SHAPE = re.compile(r"\^(?:(?:\[[0-9a-fA-F-]+\]|[0-9a-fA-F])(?:\{\d{1,2}\})?|-)+\$")


def _may_hold_pii(spec: dict[str, Any]) -> bool:
    """False for the strings whose schema leaves no room for PII: an enum, a const, a UUID shape
    (the schema check still holds every line of every version to them)."""
    if "enum" in spec or "const" in spec:
        return False
    pattern = spec.get("pattern")
    if pattern and _UUID_SHAPE.fullmatch(pattern):
        return max(int(n) for n in re.findall(r"\{(\d+)\}", pattern) or ["1"]) > 12
    return True


def _detected(spec: dict[str, Any], older: list[dict[str, Any]]) -> bool:
    """A kept string the detector must read: it may hold PII under the current version or under
    an older one still accepted (whose field may lack today's pattern)."""
    return (
        spec.get("type") == "string"
        and _policy(spec) not in (HASH, SCRUB)
        and any(_may_hold_pii(s) for s in [spec, *older])
    )


def detected_fields(
    schema: EventSchema, older: list[EventSchema] | None = None
) -> list[tuple[str, str | None]]:
    """(column, nested field or None) of every stored string kept as sent that may hold PII: the
    identifiers of the top level, and the strings inside arrays of objects
    (``items[].canonical_id``); ``older``: the other versions whose lines the table holds."""
    older = older or []
    found: list[tuple[str, str | None]] = []
    for name, spec in schema.properties.items():
        before = [s.properties[name] for s in older if name in s.properties]
        if _detected(spec, before):
            found.append((name, None))
        elif spec.get("type") == "array" and isinstance(spec.get("items"), dict):
            for field, inner in (spec["items"].get("properties") or {}).items():
                nested = [
                    b["items"]["properties"][field]
                    for b in before
                    if field in (b.get("items") or {}).get("properties", {})
                ]
                if _detected(inner, nested):
                    found.append((name, field))
    return found


def _raw_ids(schema: EventSchema) -> str:
    return "[" + ", ".join(hashed_columns(schema)) + "]::varchar[]"


def _entries(schema: EventSchema, older: list[EventSchema] | None) -> tuple[str, str]:
    """(a list of the line's kept strings as entries {n, field, value, json}, a list of just the
    values): n is the field's order, json marks a scrubbed JSON object."""
    entries = []
    values = []
    fields = detected_fields(schema, older)
    for n, (column, nested) in enumerate(fields):
        if nested is None:
            entries.append(f"[{{'n': {n}, 'field': '{column}', 'value': {column}, 'json': false}}]")
            values.append(f"[{column}]")
        else:
            label = f"{column}[].{nested}"
            entries.append(
                f"list_transform({column}, lambda e: "
                f"{{'n': {n}, 'field': '{label}', 'value': e.{nested}, 'json': false}})"
            )
            values.append(f"list_transform({column}, lambda e: e.{nested})")
    # A scrubbed object is JSON text: a token can replace PII inside a string, not a number
    # ({"n": 4111111111111111}); such a line cannot be stored as valid JSON, so it is quarantined.
    for n, column in enumerate(json_scrubbed_columns(schema), start=len(fields)):
        entries.append(f"[{{'n': {n}, 'field': '{column}', 'value': {column}, 'json': true}}]")
        values.append(f"[{column}]")
    if not entries:
        return "[]", "[]::varchar[]"
    if len(entries) == 1:
        return entries[0], values[0]
    return "list_concat(" + ", ".join(entries) + ")", "list_concat(" + ", ".join(values) + ")"


def _valid_lines(check_tables: list[str]) -> str:
    return "\n    union all\n".join(
        f"    select * from {table} where len(violations) = 0" for table in check_tables
    )


def kept_values_query(
    schema: EventSchema, check_tables: list[str], older: list[EventSchema] | None = None
) -> str:
    """``insert into pii_kept_values``: the distinct kept strings of the type's valid lines. They
    repeat (a catalogue of item ids, a few surfaces), so the detector's first test runs on each
    distinct value once (``pii_flagged``), not on every line's copy."""
    _, values = _entries(schema, older)
    return (
        f"insert into pii_kept_values\nwith\n\nchecked as (\n{_valid_lines(check_tables)}\n),\n\n"
        f"final as (\n    select distinct unnest({values}) as v\n    from checked\n)\n\n"
        "select * from final where v is not null"
    )


def id_suspects_query(
    schema: EventSchema, check_tables: list[str], older: list[EventSchema] | None = None
) -> str | None:
    """``insert into pii_id_suspects``: the type's valid lines whose kept strings, joined, contain
    one of the line's own raw ids (of 6+ characters, in any case): a superset of the lines where
    one string does, found with one substring search a line; None for a type without raw ids."""
    raw_ids = hashed_columns(schema)
    _, values = _entries(schema, older)
    if not raw_ids:
        return None
    tests = " or ".join(
        f"(length({i}) >= {MIN_RAW_ID_CHARS} and contains(joined, lower({i})))" for i in raw_ids
    )
    # array_to_string skips nulls (a lambda filtering them first doubled the cost).
    joined = f"lower(array_to_string({values}, chr(1)))"
    return (
        f"insert into pii_id_suspects\nwith\n\nchecked as (\n{_valid_lines(check_tables)}\n),\n\n"
        f"joined as (\n    select file_id, line_no, {', '.join(raw_ids)}, {joined} as joined\n"
        "    from checked\n),\n\n"
        f"final as (\n    select file_id, line_no\n    from joined\n    where {tests}\n)\n\n"
        "select * from final"
    )


def candidates_query(
    schema: EventSchema, check_tables: list[str], older: list[EventSchema] | None = None
) -> str:
    """``insert into pii_candidates``: the kept strings that a cheap test cannot clear
    (``pii_maybe``), one row each (the line, its raw ids, the entry), of the type's valid lines
    that either first test flagged: a kept value in the variable ``pii_flagged``, or a line in
    ``pii_id_suspects``. On a clean day neither holds anything and this is not run."""
    kept, values = _entries(schema, older)
    return f"""insert into pii_candidates
with

checked as (
{_valid_lines(check_tables)}
),

suspects as (
    select file_id, line_no
    from checked
    where list_has_any({values}, getvariable('pii_flagged'))
    union
    select file_id, line_no
    from pii_id_suspects
),

entries as (
    select
        file_id,
        line_no,
        {_raw_ids(schema)} as ids,
        unnest(list_filter({kept}, lambda kv: pii_maybe(kv.value, ids))) as kv
    from checked
    semi join suspects using (file_id, line_no)
),

final as (
    select
        file_id, line_no, ids, kv.n, kv.field, kv.value,
        kv.json as is_json
    from entries
)

select * from final"""


def scrubbed_expr(schema: EventSchema, column: str, alias: str = "c") -> str:
    """The stored value of a ``scrub`` column: the event's own raw identifiers, then every PII span,
    replaced by typed hash tokens (binds ``$pii_ipad`` and ``$pii_opad``)."""
    text = f"{alias}.{column}"
    is_json = str(column in json_scrubbed_columns(schema)).lower()
    for raw_id in hashed_columns(schema):
        text = f"pii_scrub_id({text}, {alias}.{raw_id}, $pii_ipad, $pii_opad, {is_json})"
    return f"pii_scrub({text}, $pii_ipad, $pii_opad)"


def whole_scrub_expr(schema: EventSchema, column: str) -> str:
    """The second look over a column that ``scrubbed_expr`` wrote: the whole value becomes one
    token where PII still hides in it (``pii_scrub_whole``; binds ``$pii_ipad``, ``$pii_opad``)."""
    is_json = str(column in json_scrubbed_columns(schema)).lower()
    return f"pii_scrub_whole({column}, $pii_ipad, $pii_opad, {is_json})"


def _shape(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in SHAPE_KEYWORDS if k in spec}


def shape_fields(
    schema: EventSchema, version: EventSchema
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(column, nested field or None, current spec) of every identifier whose current shape
    (pattern, enum, const) the older ``version`` does not already impose on its lines."""
    found: list[tuple[str, str | None, dict[str, Any]]] = []

    def held(spec: dict[str, Any], before: dict[str, Any] | None) -> bool:
        return (
            spec.get("type") == "string"
            and _policy(spec) == "identifier"
            and bool(_shape(spec))
            and before is not None  # absent from the version: a null column
            and _shape(before) != _shape(spec)
        )

    for name, spec in schema.properties.items():
        if name == VERSION_FIELD:
            continue
        before = version.properties.get(name)
        if held(spec, before):
            found.append((name, None, spec))
        elif spec.get("type") == "array" and isinstance(spec.get("items"), dict):
            inner_before = ((before or {}).get("items") or {}).get("properties") or {}
            for field, inner in (spec["items"].get("properties") or {}).items():
                if held(inner, inner_before.get(field)):
                    found.append((name, field, inner))
    return found


def _unshaped_test(value: str, spec: dict[str, Any]) -> str:
    """SQL, true when the string ``value`` is present and misses the shape of ``spec``. JSON
    Schema's ``pattern`` is a search, as the schema check's ``regexp_matches``: every identifier's
    is anchored (``^...$``), which makes it a full match (stripping the anchors for
    ``regexp_full_match`` would change ``^a|b$``, so the pattern is searched as written)."""
    misses = []
    if "pattern" in spec:
        misses.append(f"not regexp_matches({value}, {sql_literal(spec['pattern'])})")
    for keyword in ("enum", "const"):
        if keyword in spec:
            allowed = [spec[keyword]] if keyword == "const" else list(spec[keyword])
            members = ", ".join(sql_literal(str(a)) for a in allowed)
            misses.append(f"{value} not in ({members})")
    return f"coalesce({value} is not null and ({' or '.join(misses)}), false)"


def unshaped_query(
    schema: EventSchema, version: EventSchema, table: str, older: list[EventSchema] | None = None
) -> str | None:
    """``insert into pii_unshaped``: the valid lines of the older ``version`` (its check table
    ``table``) with an identifier that misses the current ``schema``'s shape: the first such
    field (n, its order as in ``detected_fields``, and its label); None when no field's shape
    changed."""
    fields = shape_fields(schema, version)
    if not fields:
        return None
    order = {f: n for n, f in enumerate(detected_fields(schema, older))}
    # (n, label, test): the CASE arms below name the lowest n that misses its shape.
    ranked = []
    for i, (column, nested, spec) in enumerate(fields):
        if nested is None:
            label, test = column, _unshaped_test(column, spec)
        else:
            inner = _unshaped_test(f"e.{nested}", spec)
            label = f"{column}[].{nested}"
            test = f"coalesce(len(list_filter({column}, lambda e: {inner})) > 0, false)"
        ranked.append((order.get((column, nested), _UNDETECTED_ORDER + i), label, test))
    ranked.sort()
    tests = "".join(f",\n        {test} as u{i}" for i, (_, _, test) in enumerate(ranked))
    n_arms = " ".join(f"when u{i} then {n}" for i, (n, _, _) in enumerate(ranked))
    field_arms = " ".join(
        f"when u{i} then {sql_literal(label)}" for i, (_, label, _) in enumerate(ranked)
    )
    flags = " or ".join(f"u{i}" for i in range(len(ranked)))
    return (
        "insert into pii_unshaped\nwith\n\n"
        f"tested as (\n    select\n        file_id,\n        line_no{tests}\n"
        f"    from {table}\n    where len(violations) = 0\n),\n\n"
        "final as (\n    select\n        file_id,\n        line_no,\n"
        f"        case {n_arms} end as n,\n        case {field_arms} end as field\n"
        f"    from tested\n    where {flags}\n)\n\n"
        "select * from final"
    )
