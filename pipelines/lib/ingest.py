"""Ingest one day: landing lines -> typed, hashed, deduplicated events + quarantine + ledger.

Partition D reads landing dates D-1 .. D+2 and keeps the lines it owns (see
``sql/ingest/stage_lines.sql``). Everything per line runs in DuckDB; Python touches only what is
rare (the strict re-parse of suspicious lines, the redaction of quarantined lines) or per distinct
value (free-text scrubbing). The day's seven tables are published as one unit (``lib/publish.py``):
all staged, then a journal, then swapped in; a crash leaves the previous version or a journal that
the next run rolls forward.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib import pii, pii_policy
from pipelines.lib.checktables import (
    check_fits,
    check_query,
    check_table,
    empty_check_query,
    rows_view,
)
from pipelines.lib.erased_users import ERASED, erased_users, move_to_erased

# PiiKey lives in keyring.py; callers may still import it from here.
from pipelines.lib.keyring import Keyring, PiiKey
from pipelines.lib.landing import LandingFile, ReadStats, iter_line_batches, list_landing_files
from pipelines.lib.paths import events_file, ledger_file, quarantine_file
from pipelines.lib.prefetch import prefetched
from pipelines.lib.publish import DayPublish, Fault, StillHeld, recover
from pipelines.lib.reasons import REASONS
from pipelines.lib.schemas import accepted_versions, kept_field_names, load_event_schemas
from pipelines.lib.sql import connect, load_sql
from pipelines.lib.sqlschema import CompiledSchema, compile_schema
from pipelines.lib.storage import Lake
from pipelines.lib.validate import LENIENT_JSON_HINTS, StrictJsonError, strict_loads
from pipelines.lib.wipe_guard import refuse_fewer_lines, refuse_to_wipe

# Partition D reads landing dates D-1 (clocks running ahead) .. D+2 (the late-arrival window).
READS_DAYS_BEFORE = 1
READS_DAYS_AFTER = 2


@dataclass(frozen=True)
class IngestSettings:
    max_line_bytes: int = 1 << 20
    batch_bytes: int = 64 << 20
    memory_limit: str = "2GB"
    threads: int = 2
    quarantine_text_bytes: int = 16 << 10
    # Landing dates whose files a re-ingest may publish without (gone, not retired): an operator's
    # explicit acceptance of their rows' loss, for one run (lib/wipe_guard.py).
    accept_missing_landing: frozenset[date] = frozenset()


@dataclass
class IngestResult:
    day: date
    files: int = 0
    lines_taken: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    erased: int = 0
    rows_landed_late: int = 0
    bytes_written: dict[str, int] = field(default_factory=dict)
    truncated_files: list[str] = field(default_factory=list)
    blank_lines: int = 0
    # Landing files not read, or not read whole or as named -> why (the ledger's `file_errors`).
    file_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_total(self) -> int:
        return sum(self.rows.values())

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def late_share(self) -> float:
        return self.rows_landed_late / self.rows_total if self.rows_total else 0.0


def landing_dates(day: date) -> list[date]:
    return [day + timedelta(days=n) for n in range(-READS_DAYS_BEFORE, READS_DAYS_AFTER + 1)]


def reading_partitions(landing_dt: date) -> list[date]:
    """The partitions that read a landing date (the inverse of ``landing_dates``)."""
    return [landing_dt + timedelta(days=n) for n in range(-READS_DAYS_AFTER, READS_DAYS_BEFORE + 1)]


def compiled_schemas() -> dict[str, CompiledSchema]:
    """The current schema of each event type: the shape its table is stored in."""
    return {t: compile_schema(s) for t, s in load_event_schemas().items()}


def compiled_versions(
    current: dict[str, CompiledSchema],
) -> dict[str, list[CompiledSchema]]:
    """Every version ingest accepts, per event type; each must fit its ``current`` table
    (``compiled_schemas()``)."""
    versions = {}
    for event_type, schemas in accepted_versions().items():
        versions[event_type] = [compile_schema(s) for s in schemas]
        for compiled in versions[event_type]:
            check_fits(compiled, current[event_type])
    return versions


def _stage(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    day: date,
    files: list[LandingFile],
    settings: IngestSettings,
    log: Callable[[str], None],
    only_lines: dict[str, pa.Array] | None = None,
) -> list[ReadStats]:
    """Stage the lines of ``files`` that ``day`` owns; with ``only_lines`` (landing path -> line
    numbers) only those lines of each file."""
    versions = accepted_versions()
    params: dict[str, Any] = {
        "day": day,
        "max_line_bytes": settings.max_line_bytes,
        "known_types": list(versions),
        "known_versions": [f"{t}/{s.version}" for t, found in versions.items() for s in found],
        **{f"lenient_hint_{n}": hint for n, hint in enumerate(LENIENT_JSON_HINTS, start=1)},
        "days_late": READS_DAYS_AFTER,
        "days_early": READS_DAYS_BEFORE,
    }
    con.execute(load_sql("ingest/create_staged.sql"))
    stage = load_sql("ingest/stage_lines.sql")
    all_stats = [ReadStats() for _ in files]
    logged = 0

    def log_read(upto: int) -> None:
        nonlocal logged
        for file_id in range(logged, upto):
            stats = all_stats[file_id]
            label = "TRUNCATED" if stats.truncated else "NOTE"
            note = f" ({label}: {'; '.join(stats.errors)})" if stats.errors else ""
            done = f"[{file_id + 1}/{len(files)}]"
            log(f"read {files[file_id].path}: {stats.lines} lines{note} {done}")
        logged = max(logged, upto)

    for file_id, batch in prefetched(_line_batches(lake, files, all_stats, settings, only_lines)):
        log_read(file_id)
        con.register("line_batch", batch)
        landing_dt = files[file_id].landing_dt
        con.execute(stage, {**params, "file_id": file_id, "landing_dt": landing_dt})
        con.unregister("line_batch")
    log_read(len(files))
    return all_stats


def _line_batches(
    lake: Lake,
    files: list[LandingFile],
    all_stats: list[ReadStats],
    settings: IngestSettings,
    only_lines: dict[str, pa.Array] | None,
) -> Iterator[tuple[int, pa.Table]]:
    """(file id, batch of lines) of every file, in order; ``all_stats`` fills as they are read.
    Blank lines are counted (``ReadStats.blank_lines``), never staged: a file of millions of them
    costs a count per batch, not a row each."""
    for file_id, landing in enumerate(files):
        stats = all_stats[file_id]
        for batch in iter_line_batches(
            lake,
            landing,
            stats,
            batch_bytes=settings.batch_bytes,
            max_line_bytes=settings.max_line_bytes,
        ):
            blank = batch["blank"]
            if blanks := pc.sum(blank).as_py():
                stats.blank_lines += blanks
                batch = batch.filter(pc.invert(blank))
            if only_lines is not None:
                batch = batch.filter(pc.is_in(batch["line_no"], value_set=only_lines[landing.path]))
            if batch.num_rows:
                yield file_id, batch


def _text_batch_rows(settings: IngestSettings) -> int:
    """Rows per batch when Python reads whole line texts back from DuckDB: at most about 256 MiB
    of text at once, however many lines there are."""
    return max(64, (256 << 20) // max(settings.max_line_bytes, 1))


def _strict_recheck(
    con: duckdb.DuckDBPyConnection, suspects: str, update: str, settings: IngestSettings
) -> None:
    """Re-parse some lines with the strict parser; mark those it rejects malformed_json. The
    lines are read back in bounded batches and the failures kept in DuckDB, so millions of
    suspects cost time, not memory."""
    con.execute(
        "create or replace table strict_failures (file_id integer, line_no bigint, detail varchar)"
    )
    # A second connection to the same database streams the suspects while the first inserts.
    reader = con.cursor()
    for batch in reader.sql(load_sql(suspects)).to_arrow_reader(_text_batch_rows(settings)):
        failures: dict[str, list[Any]] = {"file_id": [], "line_no": [], "detail": []}
        for file_id, line_no, text in zip(
            batch.column("file_id").to_pylist(),
            batch.column("line_no").to_pylist(),
            batch.column("line_text").to_pylist(),
            strict=True,
        ):
            try:
                strict_loads(text)
            except StrictJsonError as exc:
                failures["file_id"].append(file_id)
                failures["line_no"].append(line_no)
                failures["detail"].append(str(exc)[:200])
        if failures["file_id"]:
            con.register("strict_failures_batch", pa.table(failures))
            con.execute("insert into strict_failures select * from strict_failures_batch")
            con.unregister("strict_failures_batch")
    reader.close()
    con.execute(load_sql(update))
    con.execute("drop table strict_failures")


def _route(
    con: duckdb.DuckDBPyConnection,
    schemas: dict[str, CompiledSchema],
    versions: dict[str, list[CompiledSchema]],
) -> None:
    """Check every staged line against the schema of its own version (keeping its values typed
    in the current shape), deduplicate, and give every line its fate (table ``fates``)."""
    # A version no line declares gets its empty table without planning its checks.
    declared = set(con.execute(load_sql("ingest/declared_versions.sql")).fetchall())
    for event_type, found in versions.items():
        for c in found:
            if (event_type, c.version) not in declared:
                con.execute(empty_check_query(c, schemas[event_type]))
                continue
            query = check_query(c, by_version=True, stored=schemas[event_type])
            con.execute(query, {"event_type": event_type})
    # The union is structural (one branch per accepted version); names come from the schemas.
    union = "\nunion all\n".join(
        "select file_id, line_no, violations, event_id, content_hash "
        f"from {check_table(compiled, by_version=True)}"
        for found in versions.values()
        for compiled in found
    )
    con.execute("create view checked_all as\n" + union)
    _find_pii_in_fields(con, versions)
    con.execute(load_sql("ingest/valid_rows.sql"))
    con.execute(load_sql("ingest/dedup.sql"))
    con.execute(load_sql("ingest/fates.sql"))


def _find_pii_in_fields(
    con: duckdb.DuckDBPyConnection, versions: dict[str, list[CompiledSchema]]
) -> None:
    """Table ``pii_field_hits``: the schema-valid lines whose kept strings hold PII, or (a line of
    an older version) whose identifier misses the current shape (the current schema's policy
    applies to the lines of every accepted version)."""
    pii_policy.install(con)
    con.execute(load_sql("ingest/pii_candidates.sql"))
    con.execute(load_sql("ingest/pii_first_tests.sql"))
    con.execute(load_sql("ingest/pii_unshaped.sql"))
    current = load_event_schemas()
    accepted = accepted_versions()
    tables = {t: [check_table(c, by_version=True) for c in found] for t, found in versions.items()}
    for event_type, found in tables.items():
        schema, older = current[event_type], accepted[event_type]
        by_version = {s.version: s for s in older}
        for compiled in versions[event_type]:
            if compiled.version == schema.version:
                continue
            table = check_table(compiled, by_version=True)
            if query := pii_policy.unshaped_query(
                schema, by_version[compiled.version], table, older
            ):
                con.execute(query)
        con.execute(pii_policy.kept_values_query(schema, found, older))
        if query := pii_policy.id_suspects_query(schema, found, older):
            con.execute(query)
    con.execute(load_sql("ingest/pii_flagged.sql"))
    [(flagged, suspects)] = con.execute(
        "select len(getvariable('pii_flagged')), (select count(*) from pii_id_suspects)"
    ).fetchall()
    # A clean day stops here: no line holds a flagged value or one of its own raw ids.
    if flagged or suspects:
        for event_type, found in tables.items():
            schema, older = current[event_type], accepted[event_type]
            con.execute(pii_policy.candidates_query(schema, found, older))
    # Planning the detector takes about half a second: not for a day with nothing to classify.
    [(candidates,)] = con.execute("select count(*) from pii_candidates").fetchall()
    con.execute(load_sql("ingest/pii_field_hits.sql" if candidates else "ingest/no_pii_hits.sql"))


def _check(
    con: duckdb.DuckDBPyConnection,
    schemas: dict[str, CompiledSchema],
    versions: dict[str, list[CompiledSchema]],
    key: PiiKey,
    previous: PiiKey | None,
) -> None:
    inner, outer = pii.hmac_pads(key.secret)
    prev_inner, prev_outer = pii.hmac_pads(previous.secret) if previous else (None, None)
    _route(con, schemas, versions)
    # Rows of every version are read with the current schema: a valid line of an older version
    # has none of the fields it lacks (additionalProperties: false), so they read as null.
    for event_type, compiled in schemas.items():
        con.execute(rows_view(compiled, versions[event_type]))
    # Identifiers repeat (a user has many events): hash each distinct one once, then join.
    # `bridged` marks the values that also get the previous key's hash (user_id only).
    identifiers = [
        f"select {c.name} as raw, {str(c.name == BRIDGED_COLUMN).lower()} as bridged from rows_{t}"
        for t, compiled in schemas.items()
        for c in compiled.columns
        if c.pii_handling == "hash"
    ]
    con.execute("create view pii_identifiers as\n" + "\nunion all\n".join(identifiers))
    con.execute(
        load_sql("ingest/pii_hashes.sql"),
        {
            "pii_ipad": inner,
            "pii_opad": outer,
            "pii_prev_ipad": prev_inner,
            "pii_prev_opad": prev_outer,
        },
    )


# The hashed identifier that, after a key rotation, also carries the previous key's hash.
BRIDGED_COLUMN = "user_id"
BRIDGE_COLUMN = "user_id_prev"

# Columns every event table adds after the schema's own, with their meaning (docs and the UI's
# column schema read them from here).
ADDED_COLUMNS = {
    "event_ts": "`timestamp_ms` as a UTC timestamp (the same instant).",
    "pii_key_id": "Fingerprint of the key that hashed this row's identifiers.",
    BRIDGE_COLUMN: "During the overlap after a PII key rotation: `user_id` hashed with the "
    "previous key (64 hex characters), so the user joins rows of the days before the rotation; "
    "null otherwise. See pii_retention.md.",
    "landing_dt": "Arrival date A: the `dt=` folder of the landing file the row was read from.",
    "landing_file": "That landing file, as a path relative to the lake root.",
    "landing_line": "Line number of the event in that file (the first line is 1).",
}


def read_events(
    con: duckdb.DuckDBPyConnection, urls: list[str], event_type: str | None = None
) -> duckdb.DuckDBPyRelation:
    """Event files of one type over several partitions as one relation. Partitions written
    before a column existed lack it: it reads as null there, and is added as null when no file
    has it, so SQL over old and new partitions alike may refer to it. That holds for
    ``user_id_prev``, and with ``event_type`` for every column of the type's current schema
    (partitions written before its latest version was published)."""
    relation = con.read_parquet(urls, hive_partitioning=True, union_by_name=True)
    expected = {BRIDGE_COLUMN: "varchar"}
    if event_type is not None:
        expected |= {c.name: c.sql_type for c in compiled_schemas()[event_type].columns}
    # Names and types come from the schemas (validated identifiers), never from data.
    missing = [
        f"null::{kind} as {name}" for name, kind in expected.items() if name not in relation.columns
    ]
    return relation.project(", ".join(["*", *missing])) if missing else relation


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


def events_relation(
    con: duckdb.DuckDBPyConnection, compiled: CompiledSchema, key: PiiKey
) -> duckdb.DuckDBPyRelation:
    """``events_query`` with the day's key bound (its fingerprint and HMAC pads); the connection
    holds the PII macros (``pii_policy.install``)."""
    inner, outer = pii.hmac_pads(key.secret)
    params = {"pii_key_id": key.key_id, "pii_ipad": inner, "pii_opad": outer}
    query = events_query(compiled)
    # DuckDB refuses a bound parameter the statement does not use (a type with no free text).
    return con.sql(query, params={k: v for k, v in params.items() if f"${k}" in query})


QUARANTINE_SCHEMA = pa.schema(
    [
        ("landing_file", pa.string()),
        ("landing_dt", pa.date32()),
        ("line_no", pa.int64()),
        ("line_bytes", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("event_type", pa.string()),
        ("event_id", pa.string()),
        ("event_date_read", pa.date32()),
        ("text", pa.string()),
        ("text_truncated", pa.bool_()),
        ("pii_key_id", pa.string()),
    ]
)


# Redacted quarantine rows are gathered into row groups of about this many rows or bytes.
_QUARANTINE_GROUP_ROWS = 64 * 1024
_QUARANTINE_GROUP_BYTES = 64 << 20


# What a cut line loses at its end: the partial word, then a run of digits and separators.
_CUT_WORD = re.compile(r"[^\s\"',;{}\[\]]*\Z")
_CUT_NUMBER_RUN = re.compile(r"[0-9][0-9\s.()/_:+-]*\Z")


def _redact_batch(batch: pa.RecordBatch, key: PiiKey, kept: frozenset[str], limit: int) -> pa.Table:
    """Quarantined lines (``quarantine_lines.sql``) with identifiers hashed and free text scrubbed.
    Python redacts each distinct text (and detail) of the batch once: a flood of one bad line
    costs one redaction per batch."""
    text = batch.column("line_text")
    # Not UTF-8 or too large (no text): a bounded excerpt of the bytes, decoded.
    excerpt = pc.binary_slice(batch.column("raw_bytes"), 0, limit * 4)
    cut = pc.fill_null(pc.less(pc.binary_length(excerpt), batch.column("line_bytes")), False)

    def redacted(value: str) -> tuple[str, bool]:
        # Only what can be shown is redacted: the scrubber's time grows faster than the text, and
        # one hostile 1 MiB line must not hold the run for hours. A cut line is redacted by
        # pattern (it no longer parses), with the same hashes.
        value = value.rstrip("\r\n")
        shown = value[:limit]
        if shown != value:
            # The cut may fall inside a value the scrubber would know whole (an address short of
            # a letter, a card short of its check digit): its last word goes, then any number run.
            shown = _CUT_NUMBER_RUN.sub("", _CUT_WORD.sub("", shown))
        # A lone surrogate (legal in Python's JSON, not in UTF-8) must not fail the run.
        out = pii.redact_line(shown, key.secret, kept).encode("utf-8", "replace")
        return out[:limit].decode("utf-8", errors="ignore"), len(out) > limit or shown != value

    def per_distinct(values: pa.Array, decode: Callable[[Any], str]) -> tuple[pa.Array, pa.Array]:
        encoded = pc.dictionary_encode(values)
        done = [redacted(decode(v)) for v in encoded.dictionary.to_pylist()]
        shown = pa.array([d[0] for d in done], pa.string())
        long = pa.array([d[1] for d in done], pa.bool_())
        return pc.take(shown, encoded.indices), pc.take(long, encoded.indices)

    from_text, text_long = per_distinct(text, lambda v: v)
    from_bytes, bytes_long = per_distinct(
        pc.if_else(pc.is_valid(text), pa.scalar(None, excerpt.type), pc.fill_null(excerpt, b"")),
        lambda v: v.decode("utf-8", errors="replace"),
    )
    has_text = pc.is_valid(text)
    shown = pc.if_else(has_text, from_text, from_bytes)
    truncated = pc.if_else(has_text, text_long, pc.or_(cut, pc.fill_null(bytes_long, False)))
    detail = pc.dictionary_encode(batch.column("detail"))
    scrubbed = pa.array([pii.scrub_text(d) for d in detail.dictionary.to_pylist()], pa.string())
    columns = {
        name: batch.column(name)
        for name in QUARANTINE_SCHEMA.names
        if name in batch.schema.names and name != "detail"
    }
    columns.update(
        detail=pc.take(scrubbed, detail.indices),
        text=shown,
        text_truncated=truncated,
        pii_key_id=pa.array([key.key_id] * batch.num_rows, pa.string()),
    )
    return pa.table({n: columns[n] for n in QUARANTINE_SCHEMA.names}).cast(QUARANTINE_SCHEMA)


def _drop_erased(
    quarantine: pa.Table, erased: list[str], per_file: dict[str, Counter[str]]
) -> pa.Table:
    """Quarantined lines that name an erased user (hashed, in their redacted text) are dropped;
    ``per_file`` counts them per landing file and reason, for the ledger's ``erased``."""
    if not erased or quarantine.num_rows == 0:
        return quarantine
    hits = pc.fill_null(pc.match_substring_regex(quarantine["text"], "|".join(erased)), False)
    dropped = quarantine.filter(hits)
    if dropped.num_rows == 0:
        return quarantine
    counts = dropped.group_by(["landing_file", "reason"]).aggregate([("line_no", "count")])
    for landing_file, reason, n in zip(
        counts["landing_file"].to_pylist(),
        counts["reason"].to_pylist(),
        counts["line_no_count"].to_pylist(),
        strict=True,
    ):
        per_file.setdefault(landing_file, Counter())[f"quarantined_{reason}"] += n
    return quarantine.filter(pc.invert(hits))


def _redacted_quarantine(
    con: duckdb.DuckDBPyConnection,
    key: PiiKey,
    settings: IngestSettings,
    erased: list[str],
    per_file: dict[str, Counter[str]],
) -> pa.RecordBatchReader:
    """The quarantine, redacted, as a stream of row groups: read from DuckDB in bounded batches,
    redacted batch by batch, the lines of erased users left out (counted in ``per_file``), so
    millions of quarantined lines never sit in Python at once (a cold path: bad lines)."""
    kept = kept_field_names()
    limit = settings.quarantine_text_bytes
    source = con.sql(load_sql("ingest/quarantine_lines.sql")).to_arrow_reader(
        _text_batch_rows(settings)
    )

    def groups() -> Iterator[pa.RecordBatch]:
        held: list[pa.Table] = []
        rows = size = 0
        for batch in source:
            table = _drop_erased(_redact_batch(batch, key, kept, limit), erased, per_file)
            held.append(table)
            rows, size = rows + table.num_rows, size + table.nbytes
            if rows >= _QUARANTINE_GROUP_ROWS or size >= _QUARANTINE_GROUP_BYTES:
                yield from pa.concat_tables(held).combine_chunks().to_batches()
                held, rows, size = [], 0, 0
        if rows:
            yield from pa.concat_tables(held).combine_chunks().to_batches()

    return pa.RecordBatchReader.from_batches(QUARANTINE_SCHEMA, groups())


def ledger_schema(event_types: list[str]) -> pa.Schema:
    fields = [
        ("landing_file", pa.string()),
        ("landing_dt", pa.date32()),
        ("file_bytes", pa.int64()),
        ("file_lines", pa.int64()),
        ("file_truncated", pa.bool_()),
        ("file_errors", pa.string()),
        ("lines_taken", pa.int64()),
        ("rows_written", pa.int64()),
        *[(f"rows_{t}", pa.int64()) for t in event_types],
        ("quarantined", pa.int64()),
        *[(f"quarantined_{r}", pa.int64()) for r in REASONS],
        ("duplicates", pa.int64()),
        (ERASED, pa.int64()),
        ("blank_lines", pa.int64()),
        ("rows_landed_late", pa.int64()),
        ("pii_key_id", pa.string()),
    ]
    return pa.schema(fields)


def _ledger(
    con: duckdb.DuckDBPyConnection,
    day: date,
    files: list[LandingFile],
    stats: list[ReadStats],
    event_types: list[str],
    key: PiiKey,
) -> pa.Table:
    taken = dict(con.execute("select file_id, count(*) from staged group by file_id").fetchall())
    counts: dict[int, Counter[str]] = {i: Counter() for i in range(len(files))}
    for file_id, fate, event_type, reason, lines, late in con.execute(
        load_sql("ingest/ledger_counts.sql"), {"day": day}
    ).fetchall():
        c = counts[file_id]
        if fate == "row":
            c["rows_written"] += lines
            c[f"rows_{event_type}"] += lines
            c["rows_landed_late"] += late
        elif fate == "quarantined":
            c["quarantined"] += lines
            c[f"quarantined_{reason}"] += lines
        elif fate == "duplicate":
            c["duplicates"] += lines
        elif fate == ERASED:
            c[ERASED] += lines
        else:
            raise RuntimeError(f"{files[file_id].path}: {lines} line(s) with no fate ({fate})")
    schema = ledger_schema(event_types)
    rows = []
    for file_id, (landing, st) in enumerate(zip(files, stats, strict=True)):
        # A blank line has no event date: like any line without one, its landing date owns it.
        blank = st.blank_lines if landing.landing_dt == day else 0
        row: dict[str, Any] = {
            "landing_file": landing.path,
            "landing_dt": landing.landing_dt,
            "file_bytes": landing.size_bytes,
            "file_lines": st.lines,
            "file_truncated": st.truncated,
            "file_errors": "; ".join(st.errors) or None,
            "lines_taken": taken.get(file_id, 0) + blank,
            "blank_lines": blank,
            "pii_key_id": key.key_id,
        }
        for name in schema.names:
            row.setdefault(name, counts[file_id][name])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def _erased_for(lake: Lake, day: date) -> list[str]:
    """Hashed ids of users erased by a request received on or after ``day``: landing may still
    hold their raw lines, and a rebuild must not bring their rows back."""
    registry = erased_users(lake)
    keep = pc.greater_equal(registry["received_on"], pa.scalar(day, pa.date32()))
    return sorted(registry.filter(keep)["hashed_id"].to_pylist())


def _mark_erased(
    con: duckdb.DuckDBPyConnection, schemas: dict[str, CompiledSchema], erased: list[str]
) -> None:
    """Valid lines of erased users end as 'erased' (counted in the ledger), not as rows."""
    if not erased:
        return
    # One branch per event type with a user_id (structural: names come from the schemas).
    branches = [
        f"select r.file_id, r.line_no from rows_{t} as r inner join pii_hashes as h "
        f"on h.raw = r.{c.name} where h.hashed in (select unnest($erased)) "
        "or h.hashed_prev in (select unnest($erased))"
        for t, compiled in schemas.items()
        for c in compiled.columns
        if c.name == BRIDGED_COLUMN
    ]
    con.execute(
        "create temp table erased_lines as\n" + "\nunion all\n".join(branches),
        {"erased": erased},
    )
    con.execute(load_sql("ingest/mark_erased.sql"))


@contextlib.contextmanager
def _connection(settings: IngestSettings, lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    """The run's DuckDB, spilling to a private folder of this run under the lake's work root
    (removed afterwards; a killed run's folder goes when the next run starts: lib/workdir.py)."""
    with lake.private_dir() as spill:
        con = connect(settings.memory_limit, settings.threads, str(spill))
        try:
            yield con
        finally:
            con.close()


def _register_files(con: duckdb.DuckDBPyConnection, files: list[LandingFile]) -> None:
    con.register(
        "landing_files",
        pa.table(
            {
                "file_id": pa.array(range(len(files)), pa.int32()),
                "landing_file": [f.path for f in files],
            }
        ),
    )


def ingest_partition(
    lake: Lake,
    day: date,
    keys: Keyring | PiiKey,
    settings: IngestSettings | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    fault: Fault | None = None,
    still_held: StillHeld | None = None,
) -> IngestResult:
    """Build events/, quarantine/ and ledger/ for one event date; idempotent, published as one unit
    (``fault``: the publish's test hook), under the day's ingest lease its caller holds:
    ``still_held`` raises once it does not (default: ``Lease.verify`` of the day's ingest lease
    this process holds), checked before the publish commits and before each swap.

    Every row of the partition shares the event date ``day``, so one key hashes it all: the
    keyring's key for ``day``, and within the overlap after a rotation also the previous key
    (``user_id_prev``). A plain ``PiiKey`` is a keyring of that one key."""
    settings = settings or IngestSettings()
    # Before any data is read: a day no key covers fails here, naming the setting.
    key = keys.key_for(day) if isinstance(keys, Keyring) else keys
    previous = keys.previous_for(day) if isinstance(keys, Keyring) else None
    started = time.perf_counter()
    schemas = compiled_schemas()
    versions = compiled_versions(schemas)
    files = list_landing_files(lake, landing_dates(day))
    # A publish of the day cut short is completed before anything reads it (its ledger too).
    recover(lake, day, log=log, still_held=still_held)
    refuse_to_wipe(lake, day, files, settings.accept_missing_landing, log)
    erased = _erased_for(lake, day)
    result = IngestResult(day=day, files=len(files))
    with _connection(settings, lake) as con:
        stats = _stage(con, lake, day, files, settings, log)
        lines_now = {f.path: (f.landing_dt, st.lines) for f, st in zip(files, stats, strict=True)}
        refuse_fewer_lines(lake, day, lines_now, settings.accept_missing_landing, log)
        _register_files(con, files)
        # Lines DuckDB's lenient parser accepted that strict JSON may not.
        _strict_recheck(con, "ingest/lenient_lines.sql", "ingest/mark_malformed.sql", settings)
        _check(con, schemas, versions, key, previous)
        _mark_erased(con, schemas, erased)
        # Rejected lines are rare: re-parse them strictly, so a duplicate key or absurd
        # nesting anywhere in them is reported as malformed JSON, whatever else is wrong.
        _strict_recheck(
            con, "ingest/rejected_lines.sql", "ingest/mark_rejected_malformed.sql", settings
        )
        ledger = _ledger(con, day, files, stats, list(schemas), key)
        with DayPublish(
            lake, day, [*schemas, "quarantine", "ledger"], fault, log, still_held
        ) as publish:
            for event_type, compiled in schemas.items():
                reader = events_relation(con, compiled, key).to_arrow_reader(256 * 1024)
                expected = sum(ledger.column(f"rows_{event_type}").to_pylist())
                result.rows[event_type], result.bytes_written[event_type] = publish.stage(
                    event_type, events_file(event_type, day), reader, expected_rows=expected
                )
            dropped: dict[str, Counter[str]] = {}
            quarantine = _redacted_quarantine(con, key, settings, erased, dropped)
            _, result.bytes_written["quarantine"] = publish.stage(
                "quarantine", quarantine_file(day), quarantine
            )
            if dropped:
                ledger, _ = move_to_erased(ledger, dropped)
            _, result.bytes_written["ledger"] = publish.stage(
                "ledger", ledger_file(day), ledger.to_reader()
            )
    result.lines_taken = sum(ledger.column("lines_taken").to_pylist())
    result.duplicates = sum(ledger.column("duplicates").to_pylist())
    result.erased = sum(ledger.column(ERASED).to_pylist())
    result.rows_landed_late = sum(ledger.column("rows_landed_late").to_pylist())
    result.quarantined = {
        r: n for r in REASONS if (n := sum(ledger.column(f"quarantined_{r}").to_pylist()))
    }
    result.truncated_files = [f.path for f, s in zip(files, stats, strict=True) if s.truncated]
    result.blank_lines = sum(ledger.column("blank_lines").to_pylist())
    result.file_errors = {
        f.path: "; ".join(s.errors) for f, s in zip(files, stats, strict=True) if s.errors
    }
    result.seconds = time.perf_counter() - started
    return result


def revalidate_lines(
    lake: Lake, day: date, lines: pa.Table, settings: IngestSettings | None = None
) -> pa.Table:
    """Route again, with the schemas as they are now, some landing lines partition ``day`` owns
    (``lines``: landing_file, line_no): the same staging, checks and dedup as ``ingest_partition``
    over just those lines. One row per line found: landing_file, line_no, fate ('row',
    'duplicate' or 'quarantined') and reason (null unless quarantined). Refuses, like ingest, when
    a landing date ``day`` reads was retired."""
    settings = settings or IngestSettings()
    wanted = {
        path: pa.array(sorted(numbers), pa.int64()) for path, numbers in _group_lines(lines).items()
    }
    files = [f for f in list_landing_files(lake, landing_dates(day)) if f.path in wanted]
    with _connection(settings, lake) as con:
        _stage(con, lake, day, files, settings, lambda _msg: None, only_lines=wanted)
        _register_files(con, files)
        _strict_recheck(con, "ingest/lenient_lines.sql", "ingest/mark_malformed.sql", settings)
        schemas = compiled_schemas()
        _route(con, schemas, compiled_versions(schemas))
        _strict_recheck(
            con, "ingest/rejected_lines.sql", "ingest/mark_rejected_malformed.sql", settings
        )
        return con.sql(load_sql("ingest/line_verdicts.sql")).to_arrow_table()


def _group_lines(lines: pa.Table) -> dict[str, list[int]]:
    grouped = lines.group_by("landing_file").aggregate([("line_no", "list")])
    return dict(
        zip(
            grouped["landing_file"].to_pylist(),
            grouped["line_no_list"].to_pylist(),
            strict=True,
        )
    )
