"""Every statement ingest builds from the event schemas (one branch or column per type, version
or field: names come from the validated schemas, never from data; values are bound). The rest of
ingest's SQL is in ``sql/ingest/``; the schema checks themselves are ``check_tables.py``."""

from __future__ import annotations

from pipelines.lib.ingest import pii_policy
from pipelines.lib.ingest.check_tables import check_table
from pipelines.lib.schemas.registry import load_event_schemas
from pipelines.lib.schemas.sql_compiler import CompiledSchema
from pipelines.lib.schemas.stored_shape import BRIDGE_COLUMN, BRIDGED_COLUMN


def checked_all_view(versions: dict[str, list[CompiledSchema]]) -> str:
    """``checked_all``: the check tables of every accepted version as one view."""
    union = "\nunion all\n".join(
        "select file_id, line_no, violations, event_id, content_hash "
        f"from {check_table(compiled, by_version=True)}"
        for found in versions.values()
        for compiled in found
    )
    return "create view checked_all as\n" + union


def pii_identifiers_view(schemas: dict[str, CompiledSchema]) -> str:
    """``pii_identifiers``: every value of a hashed column (``raw``); ``bridged`` marks the values
    that also get the previous key's hash (user_id only)."""
    identifiers = [
        f"select {c.name} as raw, {str(c.name == BRIDGED_COLUMN).lower()} as bridged from rows_{t}"
        for t, compiled in schemas.items()
        for c in compiled.columns
        if c.pii_handling == "hash"
    ]
    return "create view pii_identifiers as\n" + "\nunion all\n".join(identifiers)


def erased_lines_table(schemas: dict[str, CompiledSchema]) -> str:
    """Temp table ``erased_lines`` (file_id, line_no): the valid lines whose user is one of
    ``$erased`` (hashed ids, under the day's key or the previous one); one branch per event type
    with a user_id."""
    branches = [
        f"select r.file_id, r.line_no from rows_{t} as r inner join pii_hashes as h "
        f"on h.raw = r.{c.name} where h.hashed in (select unnest($erased)) "
        "or h.hashed_prev in (select unnest($erased))"
        for t, compiled in schemas.items()
        for c in compiled.columns
        if c.name == BRIDGED_COLUMN
    ]
    return "create temp table erased_lines as\n" + "\nunion all\n".join(branches)


def events_query(compiled: CompiledSchema) -> str:
    """The rows of one event type that are kept, typed, identifiers replaced by their HMAC and
    free text scrubbed (binds ``$pii_key_id``, ``$pii_ipad`` and ``$pii_opad``)."""
    schema = load_event_schemas()[compiled.event_type]
    selected, joins = [], []
    bridge = f"null::varchar as {BRIDGE_COLUMN}"
    for column in compiled.columns:
        if column.pii_handling == "hash":
            alias = f"h_{column.name}"
            joins.append(f"left join pii_hashes as {alias} on {alias}.raw = c.{column.name}")
            selected.append(f"{alias}.hashed as {column.name}")
            if column.name == BRIDGED_COLUMN:
                bridge = f"{alias}.hashed_prev as {BRIDGE_COLUMN}"
        elif column.pii_handling == "scrub":
            scrubbed = pii_policy.scrubbed_expr(schema, column.name)
            selected.append(f"{scrubbed} as {column.name}")
        else:
            selected.append(f"c.{column.name}")
    selected.append(bridge)
    body = ",\n        ".join(selected)
    # The second look reads the scrubbed column by name here, outside: nesting pii_scrub in it
    # would bind the detector's macros again for each use (seconds per statement).
    names = "".join(
        f"    {pii_policy.whole_scrub_expr(schema, c.name)} as {c.name},\n"
        if c.pii_handling == "scrub"
        else f"    {c.name},\n"
        for c in compiled.columns
    )
    return (
        f"select\n{names}    cast(epoch_ms(timestamp_ms) as timestamptz) as event_ts,\n"
        f"    $pii_key_id as pii_key_id,\n    {BRIDGE_COLUMN},\n"
        "    landing_dt,\n    landing_file,\n    landing_line\n"
        f"from (\n    select\n        {body},\n"
        "        c.landing_dt,\n        l.landing_file,\n        c.line_no as landing_line\n"
        f"    from rows_{compiled.event_type} as c\n"
        "    inner join landing_files as l on c.file_id = l.file_id\n"
        + "".join(f"    {j}\n" for j in joins)
        + ")\norder by timestamp_ms, event_id"
    )
