"""Compile an event JSON Schema into DuckDB SQL, so validation runs vectorised instead of per event.

For one event type the compiler yields:

* ``violations``: an expression over the line's extracted values giving a ``VARCHAR[]`` of
  ``"<json-pointer>:<keyword>"`` labels, empty when the event is valid;
* ``columns``: the typed (and PII-hashed) columns the event is stored with.

Only the keywords listed in ``_KEYWORDS`` are compiled; any other keyword is refused at load
time, so a schema never carries a rule the lake silently does not check. Keyword semantics follow
JSON Schema
2020-12; ``pattern`` follows ECMA-262 (``$`` matches only at the very end). The differential test in
``tests/lib/test_validator_differential.py`` holds this to the reference ``jsonschema`` library.

The SQL text embeds constants read from our own schema files (bounds, enums, patterns), quoted by
``_lit``; no event data is ever spliced into SQL. The data flows through the query as columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipelines.lib.schemas import EventSchema

_ANNOTATIONS = {
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "x-pii",
    "x-pii-handling",
    # The PII policy's per-field decision on bare digit strings (documentation; the pattern
    # enforces it) and the older majors a current version still accepts (the registry's).
    "x-bare-digits",
    "x-accepts-majors",
}
# None: a field of an older version, from before every string declared its policy.
PII_HANDLINGS = (None, "hash", "scrub", "identifier")
_KEYWORDS = {
    "type",
    "const",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "x-unique-by",
    "properties",
    "required",
    "additionalProperties",
    "maxProperties",
    "dependentRequired",
}
# RE2 reads these as ASCII classes where Python's re reads Unicode ones: refuse rather than diverge.
_UNPORTABLE_REGEX = re.compile(r"\\[dDwWsSbB]")

_JSON_TYPES = {"string", "object", "array", "boolean", "null", "number", "integer"}
_BOUNDS = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
_SQL_TYPES = {"string": "varchar", "integer": "bigint", "number": "double", "boolean": "boolean"}


class SchemaCompileError(ValueError):
    """The schema uses something the SQL validator cannot check exactly."""


@dataclass(frozen=True)
class Column:
    name: str
    schema_type: str
    sql_type: str
    expr: str
    description: str
    pii: str
    pii_handling: str | None


@dataclass(frozen=True)
class CompiledSchema:
    event_type: str
    version: str
    paths: list[str]
    derived: dict[str, str]
    violations: str
    columns: list[Column]


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _num(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaCompileError(f"{where}: expected a number, got {value!r}")
    return repr(value)


def _prop_path(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SchemaCompileError(f"property name {name!r} is not a plain identifier")
    return f'$."{name}"'


def _ecma_pattern(pattern: str, where: str) -> str:
    if _UNPORTABLE_REGEX.search(pattern):
        raise SchemaCompileError(
            f"{where}: pattern {pattern!r} uses \\d, \\w, \\s or \\b, which RE2 and Python read "
            "differently; spell the class out, e.g. [0-9]"
        )
    return pattern


@dataclass(frozen=True)
class _Value:
    """SQL for one JSON value: ``raw`` is its (normalised) JSON text, NULL when absent; ``text``
    the decoded string when it is a JSON string. Kinds are read from the first character of
    ``raw``, so checking a value never parses it again."""

    raw: str
    text: str
    number: str | None = None

    @property
    def first(self) -> str:
        return f"left({self.raw}, 1)"

    @property
    def num(self) -> str:
        return self.number or f"try_cast({self.text} as double)"

    def kind(self, json_type: str) -> str:
        first = self.first
        is_number = f"{first} in ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"
        return {
            "string": f"{first} = '\"'",
            "object": f"{first} = '{{'",
            "array": f"{first} = '['",
            "boolean": f"{self.raw} in ('true', 'false')",
            "null": f"{self.raw} = 'null'",
            "number": is_number,
            "integer": f"({is_number} and {self.num} = trunc({self.num}))",
        }[json_type]


def _element(var: str) -> _Value:
    # A JSON number's text is already a valid SQL double literal: no need to parse it as JSON.
    return _Value(
        raw=var,
        text=f"json_extract_string({var}, '$')",
        number=f"try_cast({var}::varchar as double)",
    )


@dataclass(frozen=True)
class _Part:
    """One group of checks: ``bad`` is a cheap boolean (true when any check fails); ``labels``
    names the failures and is evaluated only for the rare rows where ``bad`` holds."""

    bad: str
    labels: str


def _labels(cases: list[tuple[str, str]], present: str) -> str:
    items = ", ".join(f"case when {present} and ({c}) then {_lit(lbl)} end" for c, lbl in cases)
    return f"list_filter([{items}], lambda l: l is not null)"


def _cases(cases: list[tuple[str, str]], present: str) -> list[_Part]:
    # Absent values have nothing to check; `required` reports the absence.
    if not cases:
        return []
    bad = f"({present}) and ({' or '.join(f'coalesce({c}, false)' for c, _ in cases)})"
    return [_Part(bad, _labels(cases, present))]


def _any(parts: list[_Part]) -> str:
    return " or ".join(f"coalesce({p.bad}, false)" for p in parts) or "false"


def _flatten(parts: list[_Part]) -> str:
    if not parts:
        return "[]::varchar[]"
    if len(parts) == 1:
        return parts[0].labels
    return f"flatten([{', '.join(p.labels for p in parts)}])"


def _each(elements: str, var: str, parts: list[_Part], guard: str) -> list[_Part]:
    """Checks applied to every element of a list: any element failing fails the whole."""
    if not parts:
        return []
    bad = f"{guard} and list_bool_or(list_transform({elements}, lambda {var}: {_any(parts)}))"
    labels = (
        f"case when {guard} then list_distinct(flatten(list_transform({elements}, "
        f"lambda {var}: {_flatten(parts)}))) else []::varchar[] end"
    )
    return [_Part(bad, labels)]


def _check_keywords(schema: dict[str, Any], where: str) -> None:
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise SchemaCompileError(
            f"{where or '/'}: keyword(s) {sorted(unknown)} are not supported by the SQL "
            f"validator (supported: {sorted(_KEYWORDS)})"
        )


def _scalar_cases(schema: dict[str, Any], v: _Value, label: str) -> list[tuple[str, str]]:
    """type, const, enum, numeric bounds, string length and pattern: one value, no parsing."""
    cases: list[tuple[str, str]] = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        bad = [t for t in types if t not in _JSON_TYPES]
        if bad:
            raise SchemaCompileError(f"{label}: unknown type(s) {bad}")
        cases.append((f"not ({' or '.join(v.kind(t) for t in types)})", f"{label}:type"))
    for keyword in ("const", "enum"):
        if keyword in schema:
            allowed = [schema[keyword]] if keyword == "const" else list(schema[keyword])
            if not all(isinstance(a, str) for a in allowed):
                raise SchemaCompileError(f"{label}: only string {keyword} is supported")
            members = ", ".join(_lit(a) for a in allowed)
            cases.append(
                (
                    f"not coalesce({v.kind('string')} and {v.text} in ({members}), false)",
                    f"{label}:{keyword}",
                )
            )
    for keyword, op in _BOUNDS.items():
        if keyword in schema:
            limit = _num(schema[keyword], f"{label}:{keyword}")
            cases.append((f"{v.kind('number')} and {v.num} {op} {limit}", f"{label}:{keyword}"))
    for keyword, op in (("minLength", "<"), ("maxLength", ">")):
        if keyword in schema:
            length = f"length({v.text}) {op} {int(schema[keyword])}"
            cases.append((f"{v.kind('string')} and {length}", f"{label}:{keyword}"))
    if "pattern" in schema:
        pattern = _ecma_pattern(schema["pattern"], label)
        cases.append(
            (
                f"{v.kind('string')} and not regexp_matches({v.text}, {_lit(pattern)})",
                f"{label}:pattern",
            )
        )
    return cases


_OBJECT_KEYWORDS = {
    "properties",
    "required",
    "additionalProperties",
    "maxProperties",
    "dependentRequired",
}
_ARRAY_KEYWORDS = {"items", "minItems", "maxItems", "x-unique-by"}


class _Compiler:
    """Compiles schema nodes to SQL yielding ``VARCHAR[]`` labels; ``depth`` names lambdas.

    DuckDB evaluates a repeated sub-expression each time it appears, so values used by several
    checks (an array's elements, one property of all its elements) are ``bind``-ed once as a
    derived column of the line and referred to by name.
    """

    def __init__(self) -> None:
        self.derived: dict[str, str] = {}

    def bind(self, expr: str) -> str:
        for name, bound in self.derived.items():
            if bound == expr:
                return name
        name = f"d{len(self.derived) + 1}"
        self.derived[name] = expr
        return name

    def value(self, schema: dict[str, Any], v: _Value, label: str, depth: int) -> list[_Part]:
        _check_keywords(schema, label)
        parts = _cases(_scalar_cases(schema, v, label), f"{v.raw} is not null")
        if _ARRAY_KEYWORDS & set(schema):
            parts += self.array(schema, v, label, depth)
        if _OBJECT_KEYWORDS & set(schema):
            parts += self.free_object(schema, v, label, depth)
        return parts

    def array(self, schema: dict[str, Any], v: _Value, label: str, depth: int) -> list[_Part]:
        is_arr = v.kind("array")
        cases = []
        for keyword, op in (("minItems", "<"), ("maxItems", ">")):
            if keyword in schema:
                size = f"json_array_length({v.raw}) {op} {int(schema[keyword])}"
                cases.append((f"{is_arr} and {size}", f"{label}:{keyword}"))
        if "x-unique-by" in schema:
            column = f"json_extract({v.raw}, '$[*].{_prop_path(schema['x-unique-by'])[2:]}')"
            column = self.bind(column) if depth == 0 else column
            keys = f"list_transform({column}, lambda u: try_cast(u::varchar as double))"
            cases.append(
                (
                    f"{is_arr} and len(list_filter({keys}, lambda u: u is not null)) "
                    f"<> len(list_distinct({keys}))",
                    f"{label}:x-unique-by",
                )
            )
        parts = _cases(cases, f"{v.raw} is not null")
        items = schema.get("items")
        if items is None:
            return parts
        if items.get("type") == "object":
            return parts + self.object_items(items, v, f"{label}/*", depth)
        e = f"e{depth}"
        sub = self.value(items, _element(e), f"{label}/*", depth + 1)
        return parts + _each(f"json_extract({v.raw}, '$[*]')", e, sub, is_arr)

    def object_items(
        self, schema: dict[str, Any], v: _Value, label: str, depth: int
    ) -> list[_Part]:
        """Arrays of flat objects, checked column by column: one extraction per property for
        the whole array, instead of parsing every element for every keyword."""
        _check_keywords(schema, label)
        props: dict[str, Any] = schema.get("properties", {})
        if schema.get("additionalProperties", True) is not False:
            raise SchemaCompileError(f"{label}: array items need additionalProperties: false")
        if any(_OBJECT_KEYWORDS & set(p) or _ARRAY_KEYWORDS & set(p) for p in props.values()):
            raise SchemaCompileError(f"{label}: array items may only hold scalar properties")
        if depth:
            raise SchemaCompileError(f"{label}: arrays of objects are supported at the top level")
        is_arr = v.kind("array")
        elements = self.bind(f"json_extract({v.raw}, '$[*]')")
        objects = self.bind(f"len(list_filter({elements}, lambda o: left(o, 1) = '{{'))")
        columns = {
            n: self.bind(f"json_extract({v.raw}, '$[*].{_prop_path(n)[2:]}')") for n in props
        }
        known_total = " + ".join(f"len({c})" for c in columns.values()) or "0"
        all_keys = self.bind(f"len(json_extract({v.raw}, '$[*].*'))")
        allowed = ", ".join(_lit(p) for p in props) or "''"
        cases = [
            (f"{objects} <> len({elements})", f"{label}:type"),
            # Rare rows only: the element-by-element look runs when the key counts disagree.
            (
                f"{all_keys} <> {known_total} and len(list_filter({elements}, lambda o: "
                f"len(list_filter(json_keys(o), lambda k: not list_contains([{allowed}], k))) > 0"
                ")) > 0",
                f"{label}:additionalProperties",
            ),
            (
                f"{all_keys} <> {known_total} and len(list_filter({elements}, lambda o: "
                "len(json_keys(o)) <> len(list_distinct(json_keys(o))))) > 0",
                f"{label}:duplicateKey",
            ),
        ]
        cases += [
            (f"len({columns[name]}) < {objects}", f"{label}/{name}:required")
            for name in schema.get("required", [])
        ]
        parts = _cases(cases, is_arr)
        for name, child in props.items():
            x = f"x{depth}"
            sub = _cases(_scalar_cases(child, _element(x), f"{label}/{name}"), "true")
            parts += _each(columns[name], x, sub, is_arr)
        return parts

    def free_object(self, schema: dict[str, Any], v: _Value, label: str, depth: int) -> list[_Part]:
        """An object whose keys are the producer's (filters): every value obeys one schema."""
        if schema.get("properties") or schema.get("required") or "dependentRequired" in schema:
            raise SchemaCompileError(
                f"{label}: nested objects with named properties are supported only as array items"
            )
        is_obj = v.kind("object")
        keys = f"json_keys({v.raw})"
        cases = [
            (f"{is_obj} and len({keys}) <> len(list_distinct({keys}))", f"{label}:duplicateKey")
        ]
        if "maxProperties" in schema:
            cases.append(
                (
                    f"{is_obj} and len({keys}) > {int(schema['maxProperties'])}",
                    f"{label}:maxProperties",
                )
            )
        additional = schema.get("additionalProperties", True)
        if additional is False:
            cases.append((f"{is_obj} and len({keys}) > 0", f"{label}:additionalProperties"))
        elif additional is not True and not isinstance(additional, dict):
            raise SchemaCompileError(f"{label}: additionalProperties must be a bool or a schema")
        parts = _cases(cases, f"{v.raw} is not null")
        if isinstance(additional, dict):
            y = f"y{depth}"
            sub = self.value(additional, _element(y), f"{label}/*", depth + 1)
            parts += _each(f"json_extract({v.raw}, '$.*')", y, sub, is_obj)
        return parts

    def event(self, schema: dict[str, Any], names: list[str]) -> str:
        """The event object itself, over the ``vals`` / ``strs`` / ``keys`` columns of the line."""
        _check_keywords(schema, "")
        if schema.get("additionalProperties", True) is not False:
            raise SchemaCompileError("/: events must set additionalProperties: false")
        index = {name: i + 1 for i, name in enumerate(names)}
        child = {n: _Value(raw=f"vals[{i}]", text=f"strs[{i}]") for n, i in index.items()}
        present = " + ".join(f"(vals[{i}] is not null)::int" for i in index.values())
        allowed = ", ".join(_lit(n) for n in names)
        unknown = f"list_filter(keys, lambda k: not list_contains([{allowed}], k))"
        cases = [
            # Fast path: as many keys as known properties present means no unknown, no duplicate.
            (f"len(keys) <> {present} and len({unknown}) > 0", ":additionalProperties"),
            (
                f"len(keys) <> {present} and (len(keys) <> {present} + len({unknown}) "
                f"or len({unknown}) <> len(list_distinct({unknown})))",
                ":duplicateKey",
            ),
        ]
        cases += [(f"vals[{index[r]}] is null", f"/{r}:required") for r in schema["required"]]
        for name, targets in schema.get("dependentRequired", {}).items():
            cases += [
                (
                    f"vals[{index[name]}] is not null and vals[{index[t]}] is null",
                    f"/{t}:dependentRequired",
                )
                for t in targets
            ]
        if "maxProperties" in schema:
            cases.append((f"len(keys) > {int(schema['maxProperties'])}", ":maxProperties"))
        parts = _cases(cases, "true")
        for name, spec in schema["properties"].items():
            parts += self.value(spec, child[name], f"/{name}", 0)
        return f"case when {_any(parts)} then {_flatten(parts)} else []::varchar[] end"


def _struct_type(schema: dict[str, Any], where: str) -> str:
    kind = schema.get("type")
    if kind == "object":
        fields = ", ".join(
            f"{name} {_struct_type(sub, f'{where}/{name}')}"
            for name, sub in schema.get("properties", {}).items()
        )
        return f"struct({fields})"
    if kind == "array":
        return f"{_struct_type(schema['items'], f'{where}/*')}[]"
    if isinstance(kind, str) and kind in _SQL_TYPES:
        return _SQL_TYPES[kind]
    raise SchemaCompileError(f"{where}: no storage type for {kind!r}")


def _column(name: str, spec: dict[str, Any], value: str, text: str) -> Column:
    kind = spec.get("type")
    handling = spec.get("x-pii-handling")
    if kind == "string":
        sql_type, expr = "varchar", text
    elif kind in ("integer", "number"):
        sql_type = _SQL_TYPES[kind]
        expr = f"try_cast({text} as {sql_type})"
    elif kind == "object":
        # Free-form objects (filters) are kept as JSON text: their keys are the producer's choice.
        sql_type, expr = "varchar", f"cast({value} as varchar)"
    elif kind == "array":
        sql_type = _struct_type(spec, f"/{name}")
        expr = f"try_cast({value} as {sql_type})"
    else:
        raise SchemaCompileError(f"/{name}: no storage type for {kind!r}")
    if handling == "hash" and sql_type != "varchar":
        raise SchemaCompileError(f"/{name}: only strings can be keyed-hashed")
    if handling not in PII_HANDLINGS:
        raise SchemaCompileError(f"/{name}: unknown x-pii-handling {handling!r}")
    return Column(
        name=name,
        schema_type=kind,
        sql_type=sql_type,
        expr=expr,
        description=spec.get("description", ""),
        pii=spec.get("x-pii", "none"),
        pii_handling=handling,
    )


def compile_schema(schema: EventSchema) -> CompiledSchema:
    """Compile one event schema; raises ``SchemaCompileError`` naming the offending keyword."""
    doc = schema.document
    names = list(doc["properties"])
    columns = [
        _column(name, spec, f"vals[{i}]", f"strs[{i}]")
        for i, (name, spec) in enumerate(doc["properties"].items(), start=1)
    ]
    compiler = _Compiler()
    violations = compiler.event(doc, names)
    return CompiledSchema(
        event_type=schema.event_type,
        version=schema.version,
        paths=[_prop_path(n) for n in names],
        derived=compiler.derived,
        violations=violations,
        columns=columns,
    )


def version_tag(version: str) -> str:
    """A version as part of an SQL name: 1.10.0 -> v1_10_0."""
    return "v" + version.replace(".", "_")


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
    version = f" and schema_version = {_lit(compiled.version)}" if by_version else ""
    # MATERIALIZED: DuckDB would otherwise inline the derived columns into every check that
    # uses them and compute each one several times per line.
    return (
        f"create table {check_table(compiled, by_version)} as\n"
        "with\n\nextracted as (\n    select\n        file_id,\n        line_no,\n"
        "        landing_dt,\n"
        f"        json_extract(line_text, [{paths}]) as vals,\n"
        f"        json_extract_string(line_text, [{paths}]) as strs,\n"
        "        json_keys(line_text) as keys\n    from staged\n"
        f"    where reason is null and event_type = $event_type{version}\n),\n\n"
        f"lines as materialized (\n    select *{derived}\n    from extracted\n)\n\n"
        "select\n    file_id,\n    line_no,\n    landing_dt,\n"
        f"    {compiled.violations} as violations,\n"
        f"    hash(vals) as content_hash{typed}\n"
        "from lines"
    )


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
