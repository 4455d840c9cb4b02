"""Differential tests: the SQL validator and ingest's line routing agree with the reference.

The reference is ``pipelines.lib.schemas.validator``: strict JSON (``strict_loads``) plus the python
``jsonschema`` Draft 2020-12 validator with ECMA-262 ``pattern`` and ``x-unique-by`` (``explain``).

* Document level: near-valid events (a schema example with 0-3 random mutations) are checked by
  the compiled ``violations`` expression in DuckDB and by ``explain``; the verdicts must match.
* Line level: raw landing lines (valid events, mutated events, textual damage) go through the
  real ``ingest_partition``; every line must end where a small reference classifier says.
* Regressions: minimal inputs of disagreements found by the properties above.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.check_tables import check_query
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.ingest.pii import DEV_KEY
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import accepted_versions, load_event_schemas
from pipelines.lib.schemas.sql_compiler import compile_schema
from pipelines.lib.schemas.validator import StrictJsonError, explain, strict_loads

SCHEMAS = load_event_schemas()
# Each line is held to the schema of the version it names (any version of the current major).
ACCEPTED = {t: {s.version: s for s in found} for t, found in accepted_versions().items()}
TYPES = list(SCHEMAS)
COMPILED = {t: compile_schema(s) for t, s in SCHEMAS.items()}
EXAMPLES = {t: s.document["examples"][0] for t, s in SCHEMAS.items()}
DAY = date(2025, 6, 2)
DAY_START_MS = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
MAX_TS = SCHEMAS["click"].properties["timestamp_ms"]["maximum"]
UUID_PATTERN = SCHEMAS["click"].properties["event_id"]["pattern"]
UUID_RE = re.compile(UUID_PATTERN[:-1] + r"\Z")
KEYWORDS = {
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
    "x-unique-by",
    "required",
    "additionalProperties",
    "maxProperties",
    "dependentRequired",
    "duplicateKey",
}
LABEL_RE = re.compile(r"(?:/(?:[A-Za-z_][A-Za-z0-9_]*|\*))*:(?P<keyword>[A-Za-z-]+)")
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


# ---------------------------------------------------------------------------------------------
# Value strategies
# ---------------------------------------------------------------------------------------------


def _walk(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _walk(value)


def _bounds(*keywords: str) -> list[Any]:
    found = {
        node[k]
        for s in SCHEMAS.values()
        for node in _walk(s.document)
        for k in keywords
        if isinstance(node.get(k), int | float) and not isinstance(node.get(k), bool)
    }
    return sorted(found)


NUMERIC_BOUNDS = _bounds("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
LENGTH_BOUNDS = _bounds("minLength", "maxLength", "minItems", "maxItems", "maxProperties")
ENUMS = sorted(
    {
        v
        for s in SCHEMAS.values()
        for node in _walk(s.document)
        for v in ([node["const"]] if "const" in node else node.get("enum", []))
        if isinstance(v, str)
    }
)

SPECIAL_INTS = sorted(
    {0, -1, 1, 2, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1}
    | {-(2**63), -(2**63) - 1, 10**20, 10**400, -(10**400)}
    | {int(b) + d for b in NUMERIC_BOUNDS for d in (-1, 0, 1)}
)
SPECIAL_FLOATS = sorted(
    {1.0, 0.5, -0.0, 0.0, 1e300, -1e300, 5e-324, 2.0**53, 1e20, 1.5, 0.9999999999999999}
    | {1.0000000000000002, 1000.5, 86400000.5}
    | {float(b) for b in NUMERIC_BOUNDS}
    | {math.nextafter(float(b), d) for b in NUMERIC_BOUNDS for d in (-math.inf, math.inf)}
)
SPECIAL_STRINGS = [
    "",
    " ",
    "\n",
    "a\n",
    "\u0000",
    "a\u0000b",
    "e\u0301",
    "\u0301",
    "😀",
    "👨\u200d👩\u200d👧",
    "\ufeff",
    "\u2028",
    "ﬁ",
    "İ",
    "ß",
    "\u200b",
    "\x7f",
    "\\",
    '"',
    "'",
    "null",
    "true",
    "1",
    "1.0",
    "1.0.0",
    "1.0.0\n",
    "1.0.1",
    "2.0.0",
    "en-GB",
    "en-GB\n",
    "e",
    "en-",
    "EN-gb-1234",
    "FEATURE_MISSING",
    "FEATURE_MISSING\n",
    "AB",
    "ABC",
    "aBC",
    "1AB",
    "A" * 64,
    "A" * 65,
    "exp-ranker-v2",
    "control",
]
# One code point each except "e\u0301" (two): lengths near the bounds, in code points.
LENGTH_CHARS = ["x", "é", "😀", "\u0000", "e\u0301", "\n"]


def _near_miss(value: str, how: str) -> str:
    return {
        "same": value,
        "upper": value.upper(),
        "lower": value.lower(),
        "newline": value + "\n",
        "crlf": value + "\r\n",
        "lead_newline": "\n" + value,
        "space": value + " ",
        "drop_last": value[:-1],
        "drop_first": value[1:],
        "extra": value + "0",
        "combining": value + "\u0301",
        "nul": value + "\u0000",
    }[how]


NEAR_MISSES = [
    "same",
    "same",
    "same",
    "upper",
    "lower",
    "newline",
    "crlf",
    "lead_newline",
    "space",
    "drop_last",
    "drop_first",
    "extra",
    "combining",
    "nul",
]


@st.composite
def uuid_strings(draw: st.DrawFn) -> str:
    raw = draw(st.integers(0, 2**128 - 1))
    version = draw(st.sampled_from([None, 1, 4, 4, 4]))
    text = str(uuid.UUID(int=raw) if version is None else uuid.UUID(int=raw, version=version))
    form = draw(st.sampled_from(["plain", "plain", "hex", "braces", "urn"]))
    text = {
        "plain": text,
        "hex": text.replace("-", ""),
        "braces": "{" + text + "}",
        "urn": "urn:uuid:" + text,
    }[form]
    return _near_miss(text, draw(st.sampled_from(NEAR_MISSES)))


@st.composite
def sized_strings(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from(LENGTH_BOUNDS)) + draw(st.integers(-1, 1))
    return draw(st.sampled_from(LENGTH_CHARS)) * max(n, 0)


@st.composite
def enum_neighbours(draw: st.DrawFn) -> str:
    return _near_miss(draw(st.sampled_from(ENUMS)), draw(st.sampled_from(NEAR_MISSES)))


strings = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    st.text(max_size=12),
    uuid_strings(),
    sized_strings(),
    enum_neighbours(),
)
integers = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers())
floats = st.one_of(
    st.sampled_from(SPECIAL_FLOATS), st.floats(allow_nan=False, allow_infinity=False)
)
scalars = st.one_of(strings, integers, floats, st.booleans(), st.none())
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def near_values(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values close to what ``spec`` (one property schema) accepts: in range, at and just past
    every bound, pattern matches and near misses."""
    options: list[st.SearchStrategy[Any]] = []
    kind = spec.get("type")
    if "const" in spec or "enum" in spec:
        members = [spec["const"]] if "const" in spec else spec["enum"]
        options.append(
            st.builds(_near_miss, st.sampled_from(members), st.sampled_from(NEAR_MISSES))
        )
    if "pattern" in spec:
        pattern = spec["pattern"]
        matching = st.from_regex(pattern, fullmatch=True)
        options.append(st.builds(_near_miss, matching, st.sampled_from(NEAR_MISSES)))
        if "0-9a-f" in pattern:
            options.append(uuid_strings())
    if kind == "string" and ("minLength" in spec or "maxLength" in spec):
        lengths = [spec.get("minLength", 0), spec.get("maxLength", 0)]
        sizes = st.sampled_from(lengths).flatmap(lambda n: st.integers(max(n - 1, 0), n + 1))
        options.append(st.builds(lambda c, n: c * n, st.sampled_from(LENGTH_CHARS), sizes))
        options.append(st.text(min_size=1, max_size=10))
    if kind in ("integer", "number"):
        lo, hi = spec.get("minimum", -(2**63)), spec.get("maximum", 2**63)
        edges = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1]
        options.append(st.sampled_from(edges))
        options.append(st.integers(int(lo), int(hi)))
        options.append(st.sampled_from([float(e) for e in edges] + [lo + 0.5, hi - 0.5]))
        options.append(
            st.sampled_from(
                [math.nextafter(float(b), d) for b in (lo, hi) for d in (-math.inf, math.inf)]
            )
        )
        if kind == "number":
            options.append(st.floats(float(lo), float(hi)))
    return st.one_of(options) if options else json_values


# ---------------------------------------------------------------------------------------------
# Document mutations (each takes draw, the document to mutate in place and its schema)
# ---------------------------------------------------------------------------------------------

Mutation = Callable[[st.DrawFn, dict[str, Any], dict[str, Any]], None]
UNKNOWN_KEYS = ["extra", "Event_id", "event_id ", "EVENT_TYPE", "", "é", "a.b", "$", "*", "items2"]


def set_property(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    name = draw(st.sampled_from(sorted(schema["properties"])))
    doc[name] = draw(st.one_of(near_values(schema["properties"][name]), json_values))


def delete_property(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    if doc:
        del doc[draw(st.sampled_from(sorted(doc)))]


def add_unknown(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    name = draw(st.one_of(st.sampled_from(UNKNOWN_KEYS), st.text(max_size=8)))
    doc[name] = draw(json_values)


def _items(doc: dict[str, Any]) -> list[Any]:
    if not isinstance(doc.get("items"), list) or not doc["items"]:
        doc["items"] = copy.deepcopy(EXAMPLES["ranking"]["items"])
    return doc["items"]


def resize_items(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    n = draw(st.sampled_from([*range(6)] * 10 + [1000, 1001]))
    doc["items"] = [
        {"canonical_id": f"item-{i:05d}", "position": i + 1, "score": 1.0 - i / 2000}
        for i in range(n)
    ]


def mutate_item(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    items = _items(doc)
    spec = schema["properties"]["items"]["items"]
    i = draw(st.integers(0, len(items) - 1))
    how = draw(
        st.sampled_from(
            ["set", "set", "delete", "extra", "dup_position", "float_position", "replace"]
        )
    )
    if how == "replace" or not isinstance(items[i], dict):
        items[i] = draw(json_values)
        return
    item = items[i]
    if how == "set":
        name = draw(st.sampled_from(sorted(spec["properties"])))
        item[name] = draw(st.one_of(near_values(spec["properties"][name]), json_values))
    elif how == "delete":
        item.pop(draw(st.sampled_from(["canonical_id", "position", "score"])), None)
    elif how == "extra":
        item[draw(st.sampled_from(["rank", "Position", "", "score "]))] = draw(json_values)
    elif how == "dup_position":
        other = items[draw(st.integers(0, len(items) - 1))]
        if isinstance(other, dict) and "position" in other:
            item["position"] = copy.deepcopy(other["position"])
    else:
        position = item.get("position")
        if isinstance(position, int) and not isinstance(position, bool):
            item["position"] = float(position)


filter_scalars = st.one_of(
    strings,
    st.sampled_from(["s" * 255, "s" * 256, "s" * 257, "é" * 256, "😀" * 257]),
    integers,
    floats,
    st.booleans(),
    st.none(),
)
filter_values = st.one_of(
    filter_scalars,
    st.lists(filter_scalars, max_size=4),
    st.lists(st.one_of(filter_scalars, st.lists(scalars, max_size=2)), max_size=3),
    st.sampled_from([99, 100, 101]).map(lambda n: list(range(n))),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
filter_keys = st.one_of(
    st.sampled_from(["category", "price_max", "", "a.b", "*", "$", '"', "é", "event_id"]),
    st.text(max_size=6),
)


def mutate_filters(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    how = draw(st.sampled_from(["random", "random", "random", "many", "set_one", "non_object"]))
    if how == "random":
        doc["filters"] = draw(st.dictionaries(filter_keys, filter_values, max_size=5))
    elif how == "many":
        n = draw(st.sampled_from([49, 50, 51]))
        doc["filters"] = {f"f{i}": i for i in range(n)}
    elif how == "set_one":
        if not isinstance(doc.get("filters"), dict):
            doc["filters"] = {}
        doc["filters"][draw(filter_keys)] = draw(filter_values)
    else:
        doc["filters"] = draw(json_values)


def experiment_pairing(draw: st.DrawFn, doc: dict[str, Any], schema: dict[str, Any]) -> None:
    drop = draw(st.sampled_from([["bucket"], ["experiment_id"], ["bucket", "experiment_id"]]))
    for name in drop:
        doc.pop(name, None)


GENERIC: list[Mutation] = [set_property] * 4 + [delete_property] * 2 + [add_unknown]
MUTATIONS: dict[str, list[Mutation]] = {t: GENERIC for t in TYPES}
MUTATIONS["ranking"] = [*GENERIC, resize_items, mutate_item, mutate_item, mutate_item]
MUTATIONS["request"] = [
    *GENERIC,
    mutate_filters,
    mutate_filters,
    mutate_filters,
    experiment_pairing,
]


@st.composite
def mutated_docs(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    """The schema's example with 0-3 mutations: valid and invalid outcomes are both common."""
    schema = SCHEMAS[event_type].document
    doc = copy.deepcopy(EXAMPLES[event_type])
    for _ in range(draw(st.integers(0, 3))):
        draw(st.sampled_from(MUTATIONS[event_type]))(draw, doc, schema)
    return doc


@st.composite
def doc_texts(draw: st.DrawFn, event_type: str) -> str:
    doc = draw(mutated_docs(event_type))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()))


# ---------------------------------------------------------------------------------------------
# The SQL side: the compiled expression, evaluated in DuckDB over a batch of lines
# ---------------------------------------------------------------------------------------------


class SqlCheck:
    """Runs ingest's own ``check_query`` (which evaluates the compiled ``violations``) over a
    ``staged`` table holding one batch of lines: one query per batch, as planning dominates."""

    def __init__(self) -> None:
        self.con = duckdb.connect(config={"threads": 1})
        self.con.execute(load_sql("ingest/create_staged.sql"))
        inner, outer = pii.hmac_pads(DEV_KEY)
        self.known_params = {"pii_ipad": inner, "pii_opad": outer}

    def labels(self, event_type: str, texts: list[str]) -> list[list[str]]:
        self.con.execute("delete from staged")
        self.con.execute(
            "insert into staged (file_id, line_no, line_text, event_type) "
            "select 0, unnest(range(len($t))), unnest($t), $type",
            {"t": texts, "type": event_type},
        )
        self.con.execute(f"drop table if exists checked_{event_type}")
        query = check_query(COMPILED[event_type])
        known = {**self.known_params, "event_type": event_type}
        # Bind exactly the parameters the query names (DuckDB refuses extra ones).
        params = {name: known[name] for name in set(re.findall(r"\$([A-Za-z_]\w*)", query))}
        self.con.execute(query, params)
        rows = self.con.execute(
            f"select line_no, violations from checked_{event_type} order by line_no"
        ).fetchall()
        assert [i for i, _ in rows] == list(range(len(texts)))
        return [list(labels) for _, labels in rows]


@pytest.fixture(scope="module")
def sql_check() -> Iterator[SqlCheck]:
    check = SqlCheck()
    yield check
    check.con.close()


def disagreements(sql_check: SqlCheck, event_type: str, texts: list[str]) -> list[str]:
    """Compare the verdicts on every strict-JSON text; describe each disagreement."""
    schema = SCHEMAS[event_type].document
    kept = []
    for text in texts:
        try:
            kept.append((text, strict_loads(text)))
        except StrictJsonError:
            continue  # not JSON the reference accepts: a parse-level concern, tested by line
    if not kept:
        return []
    sql = sql_check.labels(event_type, [text for text, _ in kept])
    problems = []
    for (text, instance), labels in zip(kept, sql, strict=True):
        reference = explain(schema, instance)
        if (reference == []) != (labels == []):
            problems.append(
                f"{event_type} document: {text}\n"
                f"  reference ({'valid' if not reference else 'invalid'}): {reference}\n"
                f"  sql       ({'valid' if not labels else 'invalid'}): {labels}"
            )
        for label in labels:
            match = LABEL_RE.fullmatch(label) if isinstance(label, str) else None
            if match is None or match["keyword"] not in KEYWORDS:
                problems.append(f"{event_type} document: {text}\n  malformed SQL label {label!r}")
    return problems


@pytest.mark.parametrize("event_type", TYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_sql_validator_agrees_with_reference(sql_check: SqlCheck, event_type: str, data: Any):
    texts = data.draw(st.lists(doc_texts(event_type), min_size=40, max_size=100), label="texts")
    problems = disagreements(sql_check, event_type, texts)
    assert not problems, "SQL validator disagrees with the reference:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Line level: raw landing lines through the real ingest
# ---------------------------------------------------------------------------------------------

BAD_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\xaf",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
]
# Values DuckDB's lenient reader may take but strict JSON refuses (and two it must accept).
NON_JSON_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-1e400",
    "1E+400",
    "1e0400",
    "2" + "0" * 298 + "e10",
    "1" + "0" * 5000,
    "1" + "0" * 400,
    "1e-400",
]
LITERAL_LINES = [
    b"",
    b" ",
    b"\t",
    b"\r",
    b" \t ",
    "\u00a0".encode(),
    b"\x0c",
    b"[]",
    b"[1,2]",
    b'"click"',
    b"1",
    b"-1.5",
    b"true",
    b"null",
    b"{}",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"[NaN]",
    b'{"event_type":"click"}',
    b'{"event_type":"click","schema_version":"1.0.0"}',
    b'{"event_type":"nope","schema_version":"1.0.0"}',
    b'{"schema_version":"1.0.0"}',
]


def fresh_event(event_type: str, event_id: str, ts: int) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLES[event_type])
    doc["event_id"] = event_id
    doc["timestamp_ms"] = ts
    return doc


def _splice_value(doc: dict[str, Any], name: str, token: str) -> str:
    doc = dict(doc)
    doc[name] = "\u0000SPLICE\u0000"
    return json.dumps(doc).replace(json.dumps(doc[name]), token, 1)


@st.composite
def text_damage(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """A textual mutation of a valid event's line."""
    text = json.dumps(doc, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    how = draw(
        st.sampled_from(
            [
                "trailing_comma",
                "non_json_number",
                "non_json_number",
                "duplicate_key",
                "nested_duplicate_key",
                "bad_utf8",
                "truncate",
                "bom",
                "escaped_key",
                "crlf",
                "raw_control",
                "lone_surrogate",
                "deep_nesting",
                "unknown_type",
                "unknown_version",
            ]
        )
    )
    if how == "trailing_comma":
        return (text[:-1] + draw(st.sampled_from([",", ", ", ",\t"])) + "}").encode()
    if how == "non_json_number":
        name = draw(st.sampled_from([*sorted(doc), "extra"]))
        token = draw(st.sampled_from(NON_JSON_NUMBERS))
        if name == "filters" and isinstance(doc.get("filters"), dict):
            inner = json.dumps({"price_max": "\u0000SPLICE\u0000"})
            inner = inner.replace('"\\u0000SPLICE\\u0000"', token)
            return _splice_value(doc, "filters", inner).encode()
        return _splice_value(doc, name, token).encode()
    if how == "duplicate_key":
        name = draw(st.sampled_from([*sorted(set(doc) - {"timestamp_ms"}), "zz"]))
        if name == "zz":
            return ('{"zz": 1, "zz": 2, ' + text[1:]).encode()
        first = draw(st.sampled_from([doc[name], "x", 0]))
        return ("{" + f"{json.dumps(name)}: {json.dumps(first)}, " + text[1:]).encode()
    if how == "nested_duplicate_key":
        if isinstance(doc.get("filters"), dict):
            spliced = re.sub(r'("filters":\s*\{)', r'\1"a": 1, "a": 2, ', text, count=1)
        elif isinstance(doc.get("items"), list):
            spliced = text.replace("[{", '[{"score": 0.5, ', 1)
        else:
            spliced = text[:-1] + ', "extra": {"a": 1, "a": 1}}'
        return spliced.encode()
    if how == "bad_utf8":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.sampled_from(BAD_UTF8)) + raw[at:]
    if how == "truncate":
        raw = (text[:-1] + ', "note": "é😀"}').encode()
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "escaped_key":
        return text.replace('"event_type"', '"event\\u005ftype"', 1).encode()
    if how == "crlf":
        return (text + "\r").encode()
    if how == "raw_control":
        return re.sub(r'"(\d+\.\d+\.\d+)"', '"\\1\t"', text, count=1).encode()
    if how == "lone_surrogate":
        return re.sub(r'"(\d+\.\d+\.\d+)"', r'"\1\\ud800"', text, count=1).encode()
    if how == "deep_nesting":
        depth = draw(st.sampled_from([5, 2000]))
        return (text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}").encode()
    if how == "unknown_type":
        value = draw(
            st.sampled_from(["clicks", "Click", "", "click\n", "click ", 1, None, ["click"]])
        )
        return _splice_value(doc, "event_type", json.dumps(value)).encode()
    value = draw(
        st.sampled_from(["1.0", "1.0.1", "1.0.0", "1.1.0", "2.0.0", "", "1.0.0 ", 1, 1.0, None])
    )
    return _splice_value(doc, "schema_version", json.dumps(value)).encode()


@st.composite
def landing_lines(draw: st.DrawFn, n: int) -> list[bytes]:
    rnd = draw(st.randoms(use_true_random=False))
    used: set[str] = set()

    def fresh_id() -> str:
        while True:
            event_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            if event_id not in used:
                used.add(event_id)
                return event_id

    def in_day() -> int:
        return DAY_START_MS + rnd.randrange(DAY_MS)

    lines = []
    for _ in range(n):
        kind = draw(st.sampled_from(["valid", "mutated", "mutated", "mutated", "text", "text"]))
        kind = kind if draw(st.integers(0, 9)) else "literal"
        event_type = draw(st.sampled_from(TYPES))
        if kind == "literal":
            lines.append(draw(st.sampled_from(LITERAL_LINES)))
        elif kind == "valid":
            lines.append(json.dumps(fresh_event(event_type, fresh_id(), in_day())).encode())
        elif kind == "text":
            doc = fresh_event(event_type, fresh_id(), in_day())
            lines.append(draw(text_damage(doc)))
        else:
            doc = draw(mutated_docs(event_type))
            example = EXAMPLES[event_type]
            event_id = doc.get("event_id")
            if event_id == example["event_id"] or (
                isinstance(event_id, str) and event_id in used and UUID_RE.match(event_id)
            ):
                doc["event_id"] = fresh_id()
            elif isinstance(event_id, str):
                used.add(event_id)
            if doc.get("timestamp_ms") == example["timestamp_ms"]:
                doc["timestamp_ms"] = in_day()
            lines.append(
                json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
            )
    return lines


def _event_date(instance: dict[str, Any]) -> date | None:
    """The routing date the way ingest reads it (a number within the schema's bounds)."""
    ts = instance.get("timestamp_ms")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    if not 0 <= ts <= MAX_TS:  # exact for ints of any size (10**400 has no float)
        return None
    return date(1970, 1, 1) + timedelta(milliseconds=math.floor(ts))


def reference_fate(raw: bytes) -> str | None:
    """'valid', a quarantine reason, 'blank' (white space only: counted in the landing date's
    ledger, never stored), or None when another partition owns the line."""
    if not raw.strip(b" \t\r\n"):
        return "blank"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    try:
        instance = strict_loads(text)
    except StrictJsonError:
        return "malformed_json"
    if isinstance(instance, dict):
        event_date = _event_date(instance)
        if event_date is not None:
            if event_date < DAY - timedelta(days=2):
                return "late_arrival"
            if event_date > DAY + timedelta(days=1):
                return "future_timestamp"
            if event_date != DAY:
                return None
    event_type = instance.get("event_type") if isinstance(instance, dict) else None
    if not isinstance(event_type, str) or event_type not in SCHEMAS:
        return "unknown_event_type"
    version = instance.get("schema_version")
    schema = ACCEPTED[event_type].get(version) if isinstance(version, str) else None
    if schema is None:
        return "unknown_schema_version"
    if explain(schema.document, instance):
        return "schema_violation"
    return _policy_fate(event_type, instance)


def _unshaped(event_type: str, instance: dict[str, Any]) -> bool:
    """A line of an older accepted version (1.x) with an identifier its own version declares that
    misses the current version's pattern, enum or const (``schema_version`` aside: it names the
    version), checked by the reference validator on that keyword alone."""
    version = instance.get("schema_version")
    if version == SCHEMAS[event_type].version:
        return False
    own = ACCEPTED[event_type][version].properties

    def misses(spec: dict[str, Any], value: Any) -> bool:
        shape = {k: spec[k] for k in ("pattern", "enum", "const") if k in spec}
        kept = spec.get("x-pii-handling") == "identifier" and spec.get("type") == "string"
        return kept and isinstance(value, str) and bool(shape) and bool(explain(shape, value))

    for name, spec in SCHEMAS[event_type].properties.items():
        if name == "schema_version" or name not in own:
            continue
        value = instance.get(name)
        if misses(spec, value):
            return True
        inner = (spec.get("items") or {}).get("properties") or {}
        own_inner = (own[name].get("items") or {}).get("properties") or {}
        for field, nested in inner.items():
            if field in own_inner and any(
                isinstance(e, dict) and misses(nested, e.get(field)) for e in value or []
            ):
                return True
    return False


def _policy_fate(event_type: str, instance: dict[str, Any]) -> str:
    """A schema-valid line held to the current PII policy, read from the schema's annotations
    (not from pii_policy): a string kept as sent ("identifier") that holds PII by the Python
    detector, or one of the event's own raw ids ("hash" fields of 6+ characters, any case), is
    'pii_in_field'; so is a free-form "scrub" object with a number the detector calls PII, and a
    line of an older version whose identifier misses the current shape (``_unshaped``)."""
    if _unshaped(event_type, instance):
        return "pii_in_field"
    props = SCHEMAS[event_type].properties
    raw_ids = [
        instance[n].lower()
        for n, spec in props.items()
        if spec.get("x-pii-handling") == "hash" and isinstance(instance.get(n), str)
    ]

    def leaks(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        lowered = value.lower()
        return pii.detect_class(value) is not None or any(
            len(i) >= 6 and i in lowered for i in raw_ids
        )

    for name, spec in props.items():
        value = instance.get(name)
        # A UUID (the pattern of event_id) leaves no room for PII; its digit groups are not.
        uuid_shaped = spec.get("pattern") == UUID_PATTERN
        kept = spec.get("x-pii-handling") == "identifier" and "enum" not in spec
        if kept and not uuid_shaped and leaks(value):
            return "pii_in_field"
        inner = (spec.get("items") or {}).get("properties") or {}
        for field, nested in inner.items():
            kept = nested.get("x-pii-handling") == "identifier" and "enum" not in nested
            if kept and any(isinstance(e, dict) and leaks(e.get(field)) for e in value or []):
                return "pii_in_field"
        if spec.get("x-pii-handling") == "scrub" and isinstance(value, dict):
            numbers = [
                json.dumps(v)
                for v in value.values()
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if any(pii.detect_class(n) for n in numbers):
                return "pii_in_field"
    return "valid"


def ingest_fates(lines: list[bytes]) -> tuple[dict[int, list[str]], dict[str, Any], Any]:
    """Run the real ingest on one landing file; fates per line number, the ledger row, audit."""
    with tempfile.TemporaryDirectory(prefix="differential-") as root:
        folder = Path(root) / "landing" / f"dt={DAY.isoformat()}"
        folder.mkdir(parents=True)
        (folder / "part-00000.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        lake = Lake(root)
        ingest_partition(lake, DAY, PiiKey(DEV_KEY), IngestSettings(threads=1))
        fates: dict[int, list[str]] = {}
        for event_type in TYPES:
            path = f"{root}/events/event_type={event_type}/event_date={DAY}/part-00000.parquet"
            for line_no in pq.read_table(path, columns=["landing_line"])[0].to_pylist():
                fates.setdefault(line_no, []).append("valid")
        quarantine = pq.read_table(f"{root}/quarantine/event_date={DAY}/part-00000.parquet")
        for row in quarantine.select(["line_no", "reason"]).to_pylist():
            fates.setdefault(row["line_no"], []).append(row["reason"])
        [ledger] = pq.read_table(f"{root}/ledger/event_date={DAY}/part-00000.parquet").to_pylist()
        audit = audit_ledger(lake, DAY)
    return fates, ledger, audit


def _show(raw: bytes, limit: int = 400) -> str:
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[: limit // 2]!r} ... {raw[-limit // 2 :]!r} ({len(raw)} bytes)"


def check_lines(lines: list[bytes]) -> None:
    fates, ledger, audit = ingest_fates(lines)
    reference = [reference_fate(raw) for raw in lines]
    problems = []
    for line_no, (raw, expected) in enumerate(zip(lines, reference, strict=True), start=1):
        got = fates.get(line_no, [])
        if got != ([] if expected in (None, "blank") else [expected]):
            problems.append(
                f"line {line_no}: {_show(raw)}\n"
                f"  reference: {expected or 'owned by another partition'}\n"
                f"  ingest:    {got or 'absent'}"
            )
    assert not problems, "ingest disagrees with the reference:\n" + "\n".join(problems)

    owned = [fate for fate in reference if fate is not None]
    expected_counts = Counter(owned)
    assert ledger["file_lines"] == len(lines)
    assert ledger["lines_taken"] == len(owned)
    assert ledger["duplicates"] == 0
    assert ledger["blank_lines"] == expected_counts["blank"]
    assert ledger["rows_written"] == expected_counts["valid"]
    assert ledger["rows_written"] == sum(ledger[f"rows_{t}"] for t in TYPES)
    assert ledger["quarantined"] == sum(ledger[f"quarantined_{r}"] for r in REASONS)
    assert (
        ledger["lines_taken"]
        == ledger["rows_written"] + ledger["quarantined"] + ledger["blank_lines"]
    )
    for reason in REASONS:
        assert ledger[f"quarantined_{reason}"] == expected_counts[reason], reason
    assert audit.passed, audit.metadata()


# No shrinking: each run is a whole ingest, and the failure message already names the bad lines.
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=HEALTH,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(lines=landing_lines(50))
def test_ingest_routes_every_line_like_the_reference(lines: list[bytes]):
    check_lines(lines)


# ---------------------------------------------------------------------------------------------
# Regressions: minimal inputs of disagreements the properties found
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Regressions: minimal lines on which ingest and the reference disagreed (found by the line-level
# property). Each line is run alone through the real ingest; the expected fate is the reference's.
# ---------------------------------------------------------------------------------------------

_ID = "3b0f2f4e-1c1d-4e5f-8a9b-0c1d2e3f4a5b"
_TS = DAY_START_MS + 3_600_000
_CLICK = json.dumps(fresh_event("click", _ID, _TS))
# The example's own version as written in the line; the surrogate goes inside its quotes.
_VERSION = json.dumps(EXAMPLES["click"]["schema_version"])
_REQUEST = json.dumps(fresh_event("request", _ID, _TS))
# 2e308 written without a 3-digit exponent or a 300-digit run: overflows a double.
_OVERFLOW = "2" + "0" * 298 + "e10"


def _old_request(**fields: Any) -> bytes:
    """A 1.0.0 request (no pattern on its names) with ``fields`` set."""
    doc = copy.deepcopy(ACCEPTED["request"]["1.0.0"].document["examples"][0])
    doc.update(event_id=_ID, timestamp_ms=_TS, **fields)
    return json.dumps(doc).encode()


REGRESSION_LINES = [
    # Python parses the lone surrogate; redacting the quarantined line then cannot encode it.
    pytest.param(b'["\\ud800"]', "malformed_json", id="lone-surrogate-top-level-crash"),
    pytest.param(
        _CLICK.replace(_VERSION, _VERSION[:-1] + '\\ud800"').encode(),
        "malformed_json",
        id="lone-surrogate-in-event-crash",
    ),
    pytest.param(
        _REQUEST.replace('"price_max": 120', f'"price_max": {_OVERFLOW}').encode(),
        "malformed_json",
        id="overflowing-number-written-as-row",
    ),
    pytest.param(
        _CLICK.replace('"event_type": "click"', f'"event_type": {_OVERFLOW}').encode(),
        "malformed_json",
        id="overflowing-number-as-event-type",
    ),
    pytest.param(b'{"a": 1, "a": 2}', "malformed_json", id="duplicate-key-no-event-type"),
    pytest.param(
        ('{"event_type": "nope", ' + _CLICK[1:]).encode(),
        "malformed_json",
        id="duplicate-key-event-type",
    ),
    pytest.param(
        (_CLICK[:-1] + ', "extra": {"a": 1, "a": 1}}').encode(),
        "malformed_json",
        id="duplicate-key-in-unknown-property",
    ),
    pytest.param(
        _REQUEST.replace('"price_max": 120', '"price_max": {"a": 1, "a": 1}').encode(),
        "malformed_json",
        id="duplicate-key-in-filters-value",
    ),
    pytest.param(
        (_CLICK[:-1] + ', "deep": ' + "[" * 2000 + "]" * 2000 + "}").encode(),
        "malformed_json",
        id="nesting-deeper-than-strict-parser",
    ),
    pytest.param(b"[" * 2000 + b"]" * 2000, "malformed_json", id="deep-top-level-array"),
    # A 1.x line is held to the current identifier shape: free text in region was stored.
    pytest.param(
        _old_request(region="Alice Smith, 12 Rue de Rivoli"),
        "pii_in_field",
        id="old-version-free-text-identifier",
    ),
    pytest.param(_old_request(region="eu-west"), "valid", id="old-version-shaped-identifier"),
]


@pytest.mark.parametrize(("line", "expected"), REGRESSION_LINES)
def test_regression_line(line: bytes, expected: str):
    assert reference_fate(line) == expected
    check_lines([line])
