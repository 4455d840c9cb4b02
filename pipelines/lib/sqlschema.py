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
}
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

_NUMERIC_JSON = "('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')"
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


class _Compiler:
    """Turns one schema node into label-list SQL; ``depth`` keeps nested lambda names distinct."""

    def node(self, schema: dict[str, Any], x: str, path: str, depth: int = 0) -> list[str]:
        unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise SchemaCompileError(
                f"{path or '/'}: keyword(s) {sorted(unknown)} are not supported by the SQL "
                f"validator (supported: {sorted(_KEYWORDS)})"
            )
        jt = f"json_type({x})"
        num = f"try_cast({x} as double)"
        text = f"json_extract_string({x}, '$')"
        is_num = f"{jt} in {_NUMERIC_JSON}"
        type_test = {
            "object": f"{jt} = 'OBJECT'",
            "array": f"{jt} = 'ARRAY'",
            "string": f"{jt} = 'VARCHAR'",
            "boolean": f"{jt} = 'BOOLEAN'",
            "null": f"{jt} = 'NULL'",
            "number": is_num,
            "integer": f"({jt} in ('BIGINT', 'UBIGINT', 'HUGEINT') "
            f"or ({jt} = 'DOUBLE' and {num} = trunc({num})))",
        }
        cases: list[tuple[str, str]] = []
        parts: list[str] = []
        label = path or ""

        types = schema.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else list(types)
            bad = [t for t in types if t not in type_test]
            if bad:
                raise SchemaCompileError(f"{label}: unknown type(s) {bad}")
            cases.append((f"not ({' or '.join(type_test[t] for t in types)})", f"{label}:type"))

        for keyword in ("const", "enum"):
            if keyword in schema:
                allowed = [schema[keyword]] if keyword == "const" else list(schema[keyword])
                if not all(isinstance(v, str) for v in allowed):
                    raise SchemaCompileError(f"{label}: only string {keyword} is supported")
                members = ", ".join(_lit(v) for v in allowed)
                cases.append(
                    (
                        f"not coalesce({jt} = 'VARCHAR' and {text} in ({members}), false)",
                        f"{label}:{keyword}",
                    )
                )

        bounds = {
            "minimum": "<",
            "maximum": ">",
            "exclusiveMinimum": "<=",
            "exclusiveMaximum": ">=",
        }
        for keyword, op in bounds.items():
            if keyword in schema:
                limit = _num(schema[keyword], f"{label}:{keyword}")
                cases.append((f"{is_num} and {num} {op} {limit}", f"{label}:{keyword}"))

        is_str = f"{jt} = 'VARCHAR'"
        if "minLength" in schema:
            cases.append(
                (f"{is_str} and length({text}) < {int(schema['minLength'])}", f"{label}:minLength")
            )
        if "maxLength" in schema:
            cases.append(
                (f"{is_str} and length({text}) > {int(schema['maxLength'])}", f"{label}:maxLength")
            )
        if "pattern" in schema:
            pattern = _ecma_pattern(schema["pattern"], label)
            cases.append(
                (f"{is_str} and not regexp_matches({text}, {_lit(pattern)})", f"{label}:pattern")
            )

        is_arr = f"{jt} = 'ARRAY'"
        elements = f"json_extract({x}, '$[*]')"
        if "minItems" in schema:
            cases.append(
                (
                    f"{is_arr} and json_array_length({x}) < {int(schema['minItems'])}",
                    f"{label}:minItems",
                )
            )
        if "maxItems" in schema:
            cases.append(
                (
                    f"{is_arr} and json_array_length({x}) > {int(schema['maxItems'])}",
                    f"{label}:maxItems",
                )
            )
        if "x-unique-by" in schema:
            key = _prop_path(schema["x-unique-by"])
            e = f"u{depth}"
            keys = (
                f"list_transform({elements}, "
                f"lambda {e}: try_cast(json_extract({e}, '{key}') as double))"
            )
            cases.append(
                (
                    f"{is_arr} and len(list_filter({keys}, lambda k: k is not null)) "
                    f"<> len(list_distinct({keys}))",
                    f"{label}:x-unique-by",
                )
            )
        if "items" in schema:
            e = f"e{depth}"
            sub = self.labels(schema["items"], e, f"{label}/*", depth + 1)
            parts.append(
                f"case when {is_arr} then list_distinct(flatten(list_transform({elements}, "
                f"lambda {e}: {sub}))) else []::varchar[] end"
            )

        is_obj = f"{jt} = 'OBJECT'"
        props: dict[str, Any] = schema.get("properties", {})
        if path and (props or "additionalProperties" in schema):
            keys = f"json_keys({x})"
            cases.append(
                (f"{is_obj} and len({keys}) <> len(list_distinct({keys}))", f"{label}:duplicateKey")
            )
        for name in schema.get("required", []):
            cases.append(
                (f"{is_obj} and {self.child(x, name, depth)} is null", f"{label}/{name}:required")
            )
        for name, targets in schema.get("dependentRequired", {}).items():
            for target in targets:
                cases.append(
                    (
                        f"{is_obj} and {self.child(x, name, depth)} is not null "
                        f"and {self.child(x, target, depth)} is null",
                        f"{label}/{target}:dependentRequired",
                    )
                )
        if "maxProperties" in schema:
            cases.append(
                (
                    f"{is_obj} and len(json_keys({x})) > {int(schema['maxProperties'])}",
                    f"{label}:maxProperties",
                )
            )
        additional = schema.get("additionalProperties", True)
        if additional is False:
            allowed = ", ".join(_lit(p) for p in props) or "''"
            cases.append(
                (
                    f"{is_obj} and len(list_filter(json_keys({x}), "
                    f"lambda k: not list_contains([{allowed}], k))) > 0",
                    f"{label}:additionalProperties",
                )
            )
        elif isinstance(additional, dict):
            if props:
                raise SchemaCompileError(
                    f"{label}: additionalProperties as a schema needs an empty properties"
                )
            v = f"v{depth}"
            sub = self.labels(additional, v, f"{label}/*", depth + 1)
            parts.append(
                f"case when {is_obj} then list_distinct(flatten(list_transform("
                f"json_extract({x}, '$.*'), lambda {v}: {sub}))) else []::varchar[] end"
            )
        elif additional is not True:
            raise SchemaCompileError(f"{label}: additionalProperties must be a bool or a schema")
        for name, child in props.items():
            parts.extend(self.node(child, self.child(x, name, depth), f"{label}/{name}", depth))

        if cases:
            # A property that is absent has nothing to check; `required` reports the absence.
            items = ", ".join(
                f"case when {x} is not null and ({c}) then {_lit(lbl)} end" for c, lbl in cases
            )
            parts.insert(0, f"list_filter([{items}], lambda l: l is not null)")
        return parts

    def child(self, x: str, name: str, depth: int) -> str:
        return f"json_extract({x}, '{_prop_path(name)}')"

    def labels(self, schema: dict[str, Any], x: str, path: str, depth: int) -> str:
        parts = self.node(schema, x, path, depth)
        if not parts:
            return "[]::varchar[]"
        return parts[0] if len(parts) == 1 else f"flatten([{', '.join(parts)}])"


class _TopLevel(_Compiler):
    """The event itself: its properties come from one ``json_extract`` list (one parse)."""

    def __init__(self, names: list[str]):
        self.index = {name: i + 1 for i, name in enumerate(names)}

    def child(self, x: str, name: str, depth: int) -> str:
        if depth == 0 and x == "line_text":
            return f"vals[{self.index[name]}]"
        return super().child(x, name, depth)


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


def _column(name: str, spec: dict[str, Any], value: str) -> Column:
    kind = spec.get("type")
    handling = spec.get("x-pii-handling")
    if kind == "string":
        sql_type, expr = "varchar", f"json_extract_string({value}, '$')"
    elif kind in ("integer", "number"):
        sql_type = _SQL_TYPES[kind]
        expr = f"try_cast({value} as {sql_type})"
    elif kind == "object":
        # Free-form objects (filters) are kept as JSON text: their keys are the producer's choice.
        sql_type, expr = "varchar", f"cast({value} as varchar)"
    elif kind == "array":
        sql_type = _struct_type(spec, f"/{name}")
        expr = f"try_cast({value} as {sql_type})"
    else:
        raise SchemaCompileError(f"/{name}: no storage type for {kind!r}")
    if handling == "hash":
        if sql_type != "varchar":
            raise SchemaCompileError(f"/{name}: only strings can be keyed-hashed")
        # HMAC-SHA256 per RFC 2104 on DuckDB's sha256; the pads are bound parameters.
        expr = f"sha256($pii_opad || unhex(sha256($pii_ipad || encode({expr}))))"
    elif handling not in (None, "scrub"):
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
    compiler = _TopLevel(names)
    parts = compiler.node(doc, "line_text", "", depth=0)
    violations = parts[0] if len(parts) == 1 else f"flatten([{', '.join(parts)}])"
    columns = [
        _column(name, spec, f"vals[{compiler.index[name]}]")
        for name, spec in doc["properties"].items()
    ]
    return CompiledSchema(
        event_type=schema.event_type,
        version=schema.version,
        paths=[_prop_path(n) for n in names],
        violations=violations,
        columns=columns,
    )


def check_query(compiled: CompiledSchema) -> str:
    """``create table checked_<type>``: every staged line of the type, its violations, its typed
    columns and a content hash (equal hashes = the same event, for telling duplicates apart)."""
    columns = ",\n    ".join(f"{c.expr} as {c.name}" for c in compiled.columns)
    names = ", ".join(c.name for c in compiled.columns)
    paths = ", ".join(_lit(p) for p in compiled.paths)
    return (
        f"create table checked_{compiled.event_type} as\n"
        f"select\n    file_id,\n    line_no,\n    landing_dt,\n"
        f"    {compiled.violations} as violations,\n    {columns},\n"
        f"    hash({names}) as content_hash\n"
        f"from (\n    select *, json_extract(line_text, [{paths}]) as vals\n    from staged\n"
        f"    where reason is null and event_type = $event_type\n)"
    )
