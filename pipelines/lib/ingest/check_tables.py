"""The check tables of compiled event schemas (``lib/schemas/sql_compiler.py``): the query that
checks and types
every staged line of one schema version, and the view of the rows kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.lib.lake.sql import sql_literal as _lit
from pipelines.lib.schemas.stored_shape import version_tag

if TYPE_CHECKING:
    from pipelines.lib.schemas.sql_compiler import CompiledSchema


def check_table(compiled: CompiledSchema, by_version: bool = False) -> str:
    suffix = f"_{version_tag(compiled.version)}" if by_version else ""
    return f"checked_{compiled.event_type}{suffix}"


def check_query(
    compiled: CompiledSchema, by_version: bool = False, stored: CompiledSchema | None = None
) -> str:
    """``create table checked_<type>``: every staged line of the type with its violations, a
    content hash (the hash of its normalised values, so key order and white space do not make
    two copies of an event differ) and its typed columns in the shape of ``stored`` (the current
    version; by default ``compiled`` itself), fields this version lacks as typed nulls. The line is
    parsed here once: the rows written later read these columns, not the text again.

    ``by_version``: only the lines that declare this schema's version, into
    ``checked_<type>_<version tag>`` (ingest checks each line against its own version)."""
    stored = stored or compiled
    own = {c.name: c for c in compiled.columns}
    typed = "".join(
        f",\n    {own[c.name].expr if c.name in own else f'null::{c.sql_type}'} as {c.name}"
        for c in stored.columns
    )
    paths = ", ".join(_lit(p) for p in compiled.paths)
    derived = "".join(f",\n        {expr} as {name}" for name, expr in compiled.derived.items())
    leaves = "".join(f",\n        {f}" for f in compiled.leaves)
    texts = "".join(f",\n        {t}" for t in compiled.texts) + "".join(
        f",\n        {expr} as {name}" for name, expr in compiled.fast_derived.items()
    )
    version = f" and schema_version = {_lit(compiled.version)}" if by_version else ""
    slow = {
        "vals": f"json_extract(line_text, [{paths}])",
        "strs": f"json_extract_string(line_text, [{paths}])",
        "keys": "json_keys(line_text)",
    }
    extract = "".join(
        f",\n        case when not fast_ok then {expr} end as {name}" for name, expr in slow.items()
    )
    # One parse per line (`parsed`). Only a line the fast path cannot pass is parsed again, by
    # the exact path, for the names of its violations: CASE evaluates a branch only for the rows
    # that take it. MATERIALIZED: DuckDB would otherwise inline the derived columns into every
    # check that uses them and compute each one several times per line. The hash is of the
    # struct: the same whichever path a line takes.
    return (
        f"create table {check_table(compiled, by_version)} as\n"
        "with\n\nparsed as (\n    select\n        file_id,\n        line_no,\n"
        "        landing_dt,\n        line_text,\n"
        f"        json_transform(line_text, {_lit(compiled.shape)}) as doc,\n"
        "        strlen(line_text) - strlen(replace(line_text, ':', '')) as colons\n"
        "    from staged\n"
        f"    where reason is null and event_type = $event_type{version}\n),\n\n"
        "fields as (\n    select\n        file_id,\n        line_no,\n        landing_dt,\n"
        f"        line_text,\n        colons,\n        hash(doc) as content_hash{leaves}\n"
        "    from parsed\n),\n\n"
        f"decoded as (\n    select *{texts}\n    from fields\n),\n\n"
        f"judged as (\n    select\n        *,\n        {compiled.fast} as fast_ok\n"
        "    from decoded\n),\n\n"
        f"extracted as (\n    select * exclude (line_text){extract}\n    from judged\n),\n\n"
        f"lines as (\n    select *{derived}\n    from extracted\n)\n\n"
        "select\n    file_id,\n    line_no,\n    landing_dt,\n"
        f"    case when fast_ok then []::varchar[] else {compiled.violations} end as violations,\n"
        f"    content_hash{typed}\n"
        "from lines"
    )


def empty_check_query(compiled: CompiledSchema, stored: CompiledSchema) -> str:
    """``check_query``'s table with no lines: for a version no staged line declares, without
    planning its checks (structural: names and types come from the schemas)."""
    columns = "".join(f",\n    {c.name} {c.sql_type}" for c in stored.columns)
    return (
        f"create table {check_table(compiled, by_version=True)} (\n    file_id integer,\n"
        "    line_no bigint,\n    landing_dt date,\n    violations varchar[],\n"
        f"    content_hash ubigint{columns}\n)"
    )


def rows_view(current: CompiledSchema, versions: list[CompiledSchema] | None = None) -> str:
    """``create view rows_<type>``: the lines of the type that are kept (fate ``row``), with the
    typed columns their check tables hold: those of each of ``versions`` (checked by version), or
    of ``current``'s own check table."""
    tables = (
        [check_table(v, by_version=True) for v in versions] if versions else [check_table(current)]
    )
    names = "".join(f", {c.name}" for c in current.columns)
    # One branch per check table (structural: the names come from the schemas).
    checked = "\n    union all\n".join(
        f"    select file_id, line_no, landing_dt{names} from {t}" for t in tables
    )
    return (
        f"create view rows_{current.event_type} as\n"
        f"select checked.*\nfrom (\n{checked}\n) as checked\n"
        "semi join fates\n"
        "    on checked.file_id = fates.file_id and checked.line_no = fates.line_no\n"
        "    and fates.fate = 'row'"
    )
