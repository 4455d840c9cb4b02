"""The adversarial PII corpus (``tests/ingest/pii_corpus/pii.tsv``) put into every string field of
every event type, what the lake should then do with each line, and a scanner that looks for every
corpus value in whatever the lake wrote (GitHub issue 19).

A line starts from its schema version's valid example with fresh ids and a time on the day, and
carries one corpus value in one place (``Target``): a top-level string, a string inside an array
of objects (``items[].canonical_id``), a key or a value of an object (``filters``), a sentence of a
free-text field (``message``), or a key no schema declares (as its value, or as the key itself).
A ``raw_id`` value is also the line's own ``user_id`` (and ``session_id``): the lake must spot it
as the event's own identifier.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import gzip
import json
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from pipelines.lib.schemas.registry import EventSchema, load_event_schemas
from pipelines.lib.schemas.validator import explain

CORPUS = Path(__file__).resolve().parents[1] / "ingest" / "pii_corpus" / "pii.tsv"
RAW_ID = "raw_id"
# Shorter raw ids are ordinary words ("home", "42"): the lake does not look for them in text.
MIN_RAW_ID_CHARS = 6
# Phones and cards are also looked for as bare digits (separators stripped from what is scanned).
DIGIT_CLASSES = ("phone", "card")
MIN_DIGITS = 10

# Where a value goes (Target.kind).
TOP = "top"  # doc[field] = v
ITEM = "item"  # doc[array][0][member] = v
OBJECT_KEY = "object_key"  # doc[object][v] = "x"
OBJECT_VALUE = "object_value"  # doc[object]["q"] = v
TEXT = "text"  # doc[field] = a sentence holding v
EXTRA_VALUE = "extra_value"  # doc["contact"] = v, a key no schema declares
EXTRA_KEY = "extra_key"  # doc[v] = "x"

# What ingest does with a line: "row", or the quarantine reason.
ROW = "row"
SENTENCE = "lookup failed for {} after 3 retries"


@dataclass(frozen=True)
class PiiValue:
    cls: str
    fmt: str
    value: str


def load_corpus(path: Path = CORPUS) -> list[PiiValue]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows and rows[0] == ["class", "format", "value"], f"{path}: unexpected header"
    return [PiiValue(*row) for row in rows[1:] if row]


def is_exempt(pii: PiiValue) -> bool:
    """A raw id too short to be looked for: the lake may keep it (see MIN_RAW_ID_CHARS)."""
    return pii.cls == RAW_ID and len(pii.value) < MIN_RAW_ID_CHARS


@dataclass(frozen=True)
class Target:
    event_type: str
    version: str  # the schema version the line is written in
    label: str  # as quarantine details name it: "surface", "items[].canonical_id", ...
    kind: str
    name: str  # the top-level property (or the extra key)
    member: str | None = None  # ITEM: the array element's property
    handling: str | None = None  # the current schema's x-pii-handling of the stored column


def targets(schema: EventSchema, current: EventSchema) -> list[Target]:
    """Every place of one schema version a string can go, plus two keys it does not declare."""
    found: list[Target] = []
    t, v = schema.event_type, schema.version
    for name, spec in schema.properties.items():
        handling = current.properties.get(name, spec).get("x-pii-handling")
        kind = spec.get("type")
        if kind == "string":
            found.append(
                Target(t, v, name, TEXT if handling == "scrub" else TOP, name, None, handling)
            )
        elif kind == "object":
            found.append(Target(t, v, f"{name}{{key}}", OBJECT_KEY, name, None, handling))
            found.append(Target(t, v, f"{name}{{value}}", OBJECT_VALUE, name, None, handling))
        elif kind == "array" and isinstance(spec.get("items"), dict):
            for member, inner in (spec["items"].get("properties") or {}).items():
                if inner.get("type") == "string":
                    found.append(Target(t, v, f"{name}[].{member}", ITEM, name, member, handling))
    found.append(Target(t, v, "contact", EXTRA_VALUE, "contact"))
    found.append(Target(t, v, "{extra key}", EXTRA_KEY, ""))
    return found


@dataclass
class Line:
    doc: dict[str, Any]
    expected: str  # ROW or a quarantine reason
    target: Target | None = None  # None: a clean event
    pii: PiiValue | None = None
    file: str = ""  # the landing file, relative to the lake root
    line_no: int = 0

    def text(self) -> bytes:
        return json.dumps(self.doc, separators=(",", ":"), ensure_ascii=False).encode()


def fresh_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ms(day: date, rng: random.Random) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return int(midnight * 1000) + rng.randrange(3_600_000, 22 * 3_600_000)


def _inject(doc: dict[str, Any], target: Target, value: str) -> None:
    if target.kind == TOP:
        doc[target.name] = value
    elif target.kind == TEXT:
        doc[target.name] = SENTENCE.format(value)
    elif target.kind == ITEM:
        doc[target.name][0][target.member] = value
    elif target.kind == OBJECT_KEY:
        doc[target.name] = {**doc.get(target.name, {}), value: "x"}
    elif target.kind == OBJECT_VALUE:
        doc[target.name] = {**doc.get(target.name, {}), "q": value}
    elif target.kind == EXTRA_VALUE:
        doc["contact"] = value
    elif target.kind == EXTRA_KEY:
        doc[value] = "x"
    else:
        raise ValueError(target.kind)


@cache
def _valid(spec: str, value: str) -> bool:
    return not explain(json.loads(spec), json.loads(value))


def expected_fate(schema: EventSchema, target: Target, doc: dict[str, Any]) -> str:
    """Where the lake must put the line: the routing fields first, then the line's own schema
    version (the reference validator, on the properties the line changed from the valid
    example), then the current policy of the stored column."""
    if target.kind == TOP and target.name == "event_type":
        return "unknown_event_type"
    if target.kind == TOP and target.name == "schema_version":
        return "unknown_schema_version"
    if target.kind in (EXTRA_KEY, EXTRA_VALUE):
        assert schema.document.get("additionalProperties") is False, schema.path
        return "schema_violation"
    changed = {target.name, "user_id", "session_id"} & set(schema.properties)
    for name in sorted(changed):
        spec = json.dumps(schema.properties[name], sort_keys=True)
        if name in doc and not _valid(spec, json.dumps(doc[name], sort_keys=True)):
            return "schema_violation"
    if target.handling in ("hash", "scrub"):
        return ROW
    return "pii_in_field"


class Users:
    """Clean user and session ids, none of them a corpus value."""

    def __init__(self, corpus: list[PiiValue], n: int = 16):
        values = {p.value for p in corpus}
        self.users = [f"clean-user-{i:03d}" for i in range(n)]
        self.sessions = [f"clean-session-{i:03d}" for i in range(n)]
        assert not (set(self.users) | set(self.sessions)) & values

    def assign(self, doc: dict[str, Any], schema: EventSchema, rng: random.Random) -> None:
        i = rng.randrange(len(self.users))
        if "user_id" in schema.properties:
            doc["user_id"] = self.users[i]
        if "session_id" in schema.properties:
            doc["session_id"] = self.sessions[i]


def injected_lines(
    schemas: list[EventSchema], corpus: list[PiiValue], day: date, rng: random.Random
) -> Iterator[Line]:
    """One line per (schema version, target, corpus value)."""
    current = load_event_schemas()
    users = Users(corpus)
    for schema in schemas:
        example = schema.document["examples"][0]
        for target in targets(schema, current[schema.event_type]):
            for pii in corpus:
                doc = copy.deepcopy(example)
                doc["event_id"] = fresh_uuid(rng)
                doc["timestamp_ms"] = _ms(day, rng)
                if "request_id" in doc:
                    doc["request_id"] = fresh_uuid(rng)
                users.assign(doc, schema, rng)
                if pii.cls == RAW_ID:
                    for name in ("user_id", "session_id"):
                        if name in schema.properties:
                            doc[name] = pii.value
                _inject(doc, target, pii.value)
                expected = expected_fate(schema, target, doc)
                if rng.random() < 0.02:  # the shortcut agrees with the whole line's check
                    assert (expected == "schema_violation") == bool(
                        explain(schema.document, doc)
                    ) or target.name in ("event_type", "schema_version"), (target, pii)
                yield Line(doc, expected, target, pii)


def clean_lines(
    corpus: list[PiiValue], day: date, rng: random.Random, chains: int = 40
) -> list[Line]:
    """Valid events of the current versions (the examples, fresh ids): per request its ranking,
    two impressions and a click, and an error every fourth request."""
    current = load_event_schemas()
    users = Users(corpus)
    lines: list[Line] = []
    for chain in range(chains):
        request_id, at = fresh_uuid(rng), _ms(day, rng)
        user = rng.randrange(len(users.users))
        kinds = ["request", "ranking", "impression", "impression", "click"]
        if chain % 4 == 0:
            kinds.append("error")
        for n, event_type in enumerate(kinds):
            schema = current[event_type]
            doc = copy.deepcopy(schema.document["examples"][0])
            doc.update(event_id=fresh_uuid(rng), timestamp_ms=at + 100 * n, request_id=request_id)
            if "user_id" in schema.properties:
                doc["user_id"] = users.users[user]
            if "session_id" in schema.properties:
                doc["session_id"] = users.sessions[user]
            assert not explain(schema.document, doc), event_type
            lines.append(Line(doc, ROW))
    return lines


# --- the scan ----------------------------------------------------------------------------------

# Bytes no corpus value holds (controls, non-ASCII): read as line breaks, so binary files scan as
# text and a value cannot be matched across them.
# Control characters (and what undecodable bytes become) cannot be in a corpus value: each becomes
# a line break, which no needle crosses. Other characters stay: the corpus holds non-ASCII values
# (a fullwidth '@'), so the text is decoded as UTF-8, not byte by byte.
_OPAQUE = {i: "\n" for i in [*range(0, 9), *range(11, 32), 127, 0xFFFD]}
SEPARATORS = r"[\s.()/+-]"  # stripped for the digits-only search (never \n: see _OPAQUE)
_RE2_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def _re2_escape(text: str) -> str:
    return _RE2_SPECIAL.sub(r"\\\1", text)


def as_text(data: bytes) -> str:
    """Raw bytes as lower-case text, everything no corpus value holds turned into \\n."""
    return data.decode("utf-8", errors="replace").translate(_OPAQUE).lower()


@dataclass(frozen=True)
class Finding:
    where: str  # the file (and, for a table, its column or view)
    pii: PiiValue
    form: str  # "any case", "json-escaped" (any case) or "digits only"


@dataclass
class Scanner:
    """Looks for every corpus value (lower-cased, in lower-cased text, also JSON-escaped; phones
    and cards of 10+ digits also as bare digits in the text with its separators removed). Texts
    are queued in a DuckDB table and searched in one pass (``flush``) by RE2, one alternation of
    every value, longest first. A text holding any value always yields a finding; where values
    overlap (``::ffff:192.0.2.1`` holds ``192.0.2.1``) only the leftmost, longest is named."""

    corpus: list[PiiValue]
    con: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    findings: list[Finding] = field(default_factory=list)
    files: int = 0  # files read as bytes
    file_bytes: int = 0
    tables: int = 0  # Parquet files and catalog views read as rows
    rows: int = 0
    text_bytes: int = 0  # everything searched, as text

    def __post_init__(self) -> None:
        # needle (lower-cased) -> the corpus values it stands for, and in which form
        self.plain: dict[str, list[tuple[PiiValue, str]]] = defaultdict(list)
        self.digits: dict[str, list[PiiValue]] = defaultdict(list)
        for pii in self.corpus:
            if is_exempt(pii):
                continue
            self.plain[pii.value.lower()].append((pii, "any case"))
            escaped = json.dumps(pii.value)[1:-1].replace("/", "\\/")
            if escaped != pii.value:
                self.plain[escaped.lower()].append((pii, "json-escaped"))
            digits = re.sub(r"\D", "", pii.value)
            if pii.cls in DIGIT_CLASSES and len(digits) >= MIN_DIGITS:
                self.digits[digits].append(pii)
        # Longest first: at one position RE2 takes the first alternative that matches.
        self.patterns = {
            "plain": "|".join(_re2_escape(n) for n in sorted(self.plain, key=len, reverse=True)),
            "digits": "|".join(sorted(self.digits, key=len, reverse=True)) or "$^",
            "sep": SEPARATORS,
        }
        self.con.execute("set threads = 2")
        self.con.execute("create temp table texts (place varchar, is_row boolean, text varchar)")

    @property
    def values(self) -> int:
        return len({p for found in self.plain.values() for p, _ in found})

    @property
    def needles(self) -> int:
        return len(self.plain) + len(self.digits)

    def add_bytes(self, where: str, data: bytes) -> None:
        """A file's bytes as text (a gzip file's content too)."""
        self.files += 1
        self.file_bytes += len(data)
        self.con.execute("insert into texts values (?, false, ?)", [where, as_text(data)])
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError):
                self.add_bytes(f"{where} (gunzipped)", gzip.decompress(data))

    def add_rows(self, where: str, relation_sql: str) -> int:
        """Every row of a relation (on this scanner's connection) as its lower-cased JSON text,
        struct and list members included."""
        [(count,)] = self.con.execute(
            f"insert into texts select ?, true, lower(to_json(t)::varchar) from ({relation_sql}) t",
            [where],
        ).fetchall()
        self.tables += 1
        self.rows += count
        return count

    def flush(self) -> None:
        """Search the queued texts; a table row's finding names its column(s)."""
        [(size,)] = self.con.execute("select coalesce(sum(strlen(text)), 0) from texts").fetchall()
        self.text_bytes += size
        hits = self.con.execute(
            "with found as (select place, is_row, text, "
            "regexp_extract_all(text, $plain) as plain, "
            "regexp_extract_all(regexp_replace(text, $sep, '', 'g'), $digits) as digits "
            "from texts) "
            "select place, case when is_row then text end, list_distinct(plain), "
            "list_distinct(digits) from found where len(plain) > 0 or len(digits) > 0",
            self.patterns,
        ).fetchall()
        self.con.execute("delete from texts")
        for where, row, plain, digits in hits:
            cells = {}
            if row is not None:
                cells = {c: json.dumps(v, ensure_ascii=False) for c, v in json.loads(row).items()}
            for needle in plain:
                for pii, form in self.plain[needle]:
                    self.findings.append(Finding(_at(where, cells, needle, False), pii, form))
            for needle in digits:
                for pii in self.digits[needle]:
                    self.findings.append(
                        Finding(_at(where, cells, needle, True), pii, "digits only")
                    )


def _at(where: str, cells: dict[str, str], needle: str, bare: bool) -> str:
    """``where``, with the columns of a row whose text holds ``needle``."""
    if not cells:
        return where
    columns = [
        c for c, cell in cells.items() if needle in (re.sub(SEPARATORS, "", cell) if bare else cell)
    ]
    return f"{where} [{', '.join(columns) or 'row'}]"


def describe(findings: list[Finding], limit: int = 80) -> str:
    """Where values were found and of which class/format, values left out: a line per place
    (file, and column or view), its most frequent formats first."""
    by_place: dict[str, Counter[str]] = defaultdict(Counter)
    for f in findings:
        by_place[f.where][f"{f.pii.cls}/{f.pii.fmt}"] += 1
    classes = Counter(f.pii.cls for f in findings)
    formats = {f"{f.pii.cls}/{f.pii.fmt}" for f in findings}
    lines = [
        f"by class: {dict(sorted(classes.items()))}; {len(formats)} formats; "
        f"{len(by_place)} places:"
    ]
    for where, found in sorted(by_place.items())[:limit]:
        shown = ", ".join(f"{k} x{n}" for k, n in found.most_common(5))
        more = f", and {len(found) - 5} more formats" if len(found) > 5 else ""
        lines.append(f"  {where}: {shown}{more}")
    if len(by_place) > limit:
        lines.append(f"  ... and {len(by_place) - limit} more places")
    return "\n".join(lines)
