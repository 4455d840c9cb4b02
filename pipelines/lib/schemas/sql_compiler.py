"""Compile an event JSON Schema into DuckDB SQL, so validation runs vectorised instead of per event.

For one event type the compiler yields:

* ``violations``: an expression over the line's extracted values giving a ``VARCHAR[]`` of
  ``"<json-pointer>:<keyword>"`` labels, empty when the event is valid;
* ``columns``: the typed (and PII-hashed) columns the event is stored with;
* ``fast``: the one-parse check (``_Fast``), true only for a valid event; the lines it does not
  pass are parsed again for ``violations``.

Only the keywords in ``keywords.VALIDATION`` are compiled; any other keyword is refused at
load time, so a schema never carries a rule the lake silently does not check. Keyword semantics
follow JSON Schema 2020-12; ``pattern`` follows ECMA-262 (``$`` matches only at the very end).
The differential test in ``tests/schemas/test_validator_differential.py`` holds this to the
reference ``jsonschema`` library.

The SQL text embeds constants read from our own schema files (bounds, enums, patterns), quoted by
``_lit``; no event data is ever spliced into SQL. The data flows through the query as columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipelines.lib.lake.sql import sql_literal as _lit

# The keywords, listed once (schemas/keywords.py): compiled, never rejecting, object, array.
from pipelines.lib.schemas.keywords import ANNOTATIONS as _ANNOTATIONS
from pipelines.lib.schemas.keywords import ARRAY as _ARRAY_KEYWORDS
from pipelines.lib.schemas.keywords import OBJECT as _OBJECT_KEYWORDS
from pipelines.lib.schemas.keywords import VALIDATION as _KEYWORDS
from pipelines.lib.schemas.registry import EventSchema
from pipelines.lib.schemas.sql_columns import Column, SchemaCompileError
from pipelines.lib.schemas.sql_columns import column as stored_column

# RE2 reads these as ASCII classes where Python's re reads Unicode ones: refuse rather than diverge.
_UNPORTABLE_REGEX = re.compile(r"\\[dDwWsSbB]")

_JSON_TYPES = {"string", "object", "array", "boolean", "null", "number", "integer"}
_BOUNDS = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}


@dataclass(frozen=True)
class CompiledSchema:
    event_type: str
    version: str
    paths: list[str]
    derived: dict[str, str]
    violations: str
    columns: list[Column]
    # The fast path (``_Fast``): the line's struct, its leaves and their texts, the check.
    shape: str
    leaves: list[str]
    texts: list[str]
    fast: str
    fast_derived: dict[str, str]


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


class _Compiler:
    """Compiles schema nodes to SQL yielding ``VARCHAR[]`` labels; ``depth`` names lambdas.

    DuckDB evaluates a repeated sub-expression each time it appears, so values used by several
    checks (an array's elements, one property of all its elements) are ``bind``-ed once as a
    derived column of the line and referred to by name.
    """

    prefix = "d"

    def __init__(self) -> None:
        self.derived: dict[str, str] = {}

    def bind(self, expr: str) -> str:
        for name, bound in self.derived.items():
            if bound == expr:
                return name
        name = f"{self.prefix}{len(self.derived) + 1}"
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


def _decoded(leaf: str, spec: dict[str, Any]) -> str:
    """A JSON leaf's text as ``json_extract_string`` reads it, for the values ``spec`` allows:
    a string with an escape in it is parsed again, any other is its text between the quotes; a
    number is its own text. A value of another kind fails the type check, which reads the leaf."""
    kind = spec.get("type")
    string = f"case when contains({leaf}, '\\') then json_extract_string({leaf}, '$') "
    string += f"else substr({leaf}, 2, length({leaf}) - 2) end"
    if kind == "string":
        return string
    if kind in ("integer", "number", "boolean"):
        return f"{leaf}::varchar"
    return f"case when left({leaf}, 1) = '\"' then {string} else {leaf}::varchar end"


def _object_items(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "array" and spec.get("items", {}).get("type") == "object"


class _Fast(_Compiler):
    """The fast path: one ``json_transform`` of the line (``shape``) to a struct whose leaves are
    JSON, so each value's JSON type stays visible (an array of objects becomes a list of such
    structs); ``f<i>`` is property i's leaf, ``s<i>`` its decoded text. ``ok`` holds only for a
    valid event; any other line takes the exact path (``event``), which names its violations.

    Why no key is missed: every key in JSON text is followed by one ':' outside strings. A line
    holding exactly as many ':' as the struct found known keys with non-null values therefore
    has no other key at any depth (unknown, duplicate, or whose value is null), and no ':' in
    any string: its struct is the whole event. Any other line (a ':' in a value, say) is merely
    slower."""

    prefix = "g"

    def shape(self, schema: dict[str, Any]) -> str:
        return json.dumps(
            {
                name: [{p: "JSON" for p in spec["items"].get("properties", {})}]
                if _object_items(spec)
                else "JSON"
                for name, spec in schema["properties"].items()
            }
        )

    def event(self, schema: dict[str, Any], names: list[str]) -> str:
        _check_keywords(schema, "")
        leaf = {n: f"f{i}" for i, n in enumerate(names, start=1)}
        present = [f"({f} is not null)::int" for f in leaf.values()]
        counted = list(present)
        bad = [f"{leaf[r]} is null" for r in schema["required"]]
        for name, targets in schema.get("dependentRequired", {}).items():
            bad += [f"{leaf[name]} is not null and {leaf[t]} is null" for t in targets]
        if "maxProperties" in schema:
            bad.append(f"{' + '.join(present)} > {int(schema['maxProperties'])}")
        for i, (name, spec) in enumerate(schema["properties"].items(), start=1):
            if _object_items(spec):
                more, keys = self.items(spec, leaf[name], f"/{name}")
                bad += more
                counted.append(keys)
                continue
            bad.append(_any(self.value(spec, _Value(leaf[name], f"s{i}"), f"/{name}", 0)))
            if _OBJECT_KEYWORDS & set(spec):
                # A free object's own keys (json_keys counts repeated ones too).
                counted.append(
                    f"coalesce(len(json_keys(case when left({leaf[name]}, 1) = '{{' "
                    f"then {leaf[name]} end)), 0)"
                )
        clean = f"colons = {' + '.join(counted)}"
        return f"coalesce({clean} and not ({' or '.join(f'({b})' for b in bad)}), false)"

    def items(self, spec: dict[str, Any], f: str, label: str) -> tuple[list[str], str]:
        """An array of flat objects, as a list of structs: (checks that fail, keys it holds)."""
        _check_keywords(spec, label)
        items = spec["items"]
        props: dict[str, Any] = items.get("properties", {})
        leaves = {p: f'it."{p}"' for p in props}
        # Each element's values are read once (leaf, text, number), then checked.
        read, values = [], {}
        for n, (p, child) in enumerate(props.items(), start=1):
            read += [f"'r{n}': {leaves[p]}", f"'t{n}': {_decoded(leaves[p], child)}"]
            number = None
            if child.get("type") != "string":
                read.append(f"'n{n}': try_cast({leaves[p]}::varchar as double)")
                number = f"e.n{n}"
            values[p] = _Value(f"e.r{n}", f"e.t{n}", number)
        listed = self.bind(f"list_transform({f}, lambda it: {{{', '.join(read)}}})")
        # An element that is no object is a struct of nulls: its required properties are
        # missing, or (none required) all of them.
        elem = [f"{values[r].raw} is null" for r in items.get("required", [])] or [
            " and ".join(f"{v.raw} is null" for v in values.values()) or "true"
        ]
        for p, child in props.items():
            v = values[p]
            elem.append(_any(_cases(_scalar_cases(child, v, label), f"{v.raw} is not null")))
        bad = [
            f"not coalesce(list_bool_and(list_transform({listed}, lambda e: "
            f"not ({' or '.join(f'({x})' for x in elem)}))), true)"
        ]
        types = spec.get("type")
        if "const" in spec or "enum" in spec or (types is not None and "array" not in types):
            bad.append(f"{f} is not null")
        bad += [f"len({f}) < {int(spec['minItems'])}"] if "minItems" in spec else []
        bad += [f"len({f}) > {int(spec['maxItems'])}"] if "maxItems" in spec else []
        if "x-unique-by" in spec:
            by = _prop_path(spec["x-unique-by"])[2:]
            keys = self.bind(
                f"list_transform({f}, lambda it: try_cast(it.{by}::varchar as double))"
            )
            bad.append(
                f"len(list_filter({keys}, lambda u: u is not null)) <> len(list_distinct({keys}))"
            )
        # With every property required, a line that passes has each of them in every element.
        if set(props) == set(items.get("required", [])):
            count = f"{len(props)} * len({f})"
        else:
            per = " + ".join(f"({x} is not null)::int" for x in leaves.values()) or "0"
            count = f"list_sum(list_transform({f}, lambda it: {per}))"
        return bad, f"coalesce({count}, 0)"

    def stored(self, spec: dict[str, Any], f: str) -> str:
        """An array of objects as its stored type casts it: string leaves decoded."""
        props = spec["items"].get("properties", {})
        leaves = {p: f'it."{p}"' for p in props}
        fields = ", ".join(
            f"'{p}': {_decoded(leaves[p], s) if s.get('type') == 'string' else leaves[p]}"
            for p, s in props.items()
        )
        return f"list_transform({f}, lambda it: {{{fields}}})"


def compile_schema(schema: EventSchema) -> CompiledSchema:
    """Compile one event schema; raises ``SchemaCompileError`` naming the offending keyword."""
    doc = schema.document
    names = list(doc["properties"])
    compiler, fast = _Compiler(), _Fast()
    leaves, texts, columns = [], [], []
    for i, (name, spec) in enumerate(doc["properties"].items(), start=1):
        leaves.append(f'doc."{name}" as f{i}')
        if _object_items(spec):
            columns.append(stored_column(name, spec, fast.stored(spec, f"f{i}"), f"f{i}"))
        else:
            texts.append(f"{_decoded(f'f{i}', spec)} as s{i}")
            columns.append(stored_column(name, spec, f"f{i}", f"s{i}"))
    violations = compiler.event(doc, names)
    ok = fast.event(doc, names)
    return CompiledSchema(
        event_type=schema.event_type,
        version=schema.version,
        paths=[_prop_path(n) for n in names],
        derived=compiler.derived,
        violations=violations,
        columns=columns,
        shape=fast.shape(doc),
        leaves=leaves,
        texts=texts,
        fast=ok,
        fast_derived=fast.derived,
    )
