"""Ingest one day: landing lines -> typed, hashed, deduplicated events + quarantine + ledger.

Partition D reads landing dates D-1 .. D+2 and keeps the lines it owns (see
``sql/ingest/route_lines.sql``). Everything per line runs in DuckDB; Python touches only what is
rare (the strict re-parse of suspicious lines, the redaction of quarantined lines) or per distinct
value (free-text scrubbing). The day's seven tables are published as one unit
(``lib/lake/publish.py``):
all staged, then a journal, then swapped in; a crash leaves the previous version or a journal that
the next run rolls forward.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.ingest import generated_sql, pii, pii_policy
from pipelines.lib.ingest.check_tables import (
    check_query,
    check_table,
    empty_check_query,
    rows_view,
)
from pipelines.lib.ingest.erased_users import ERASED, erased_users, move_to_erased
from pipelines.lib.ingest.keyring import Keyring, PiiKey
from pipelines.lib.ingest.landing import (
    LandingFile,
    landing_dates,
    list_landing_files,
)
from pipelines.lib.ingest.ledger import ledger_table
from pipelines.lib.ingest.quarantine import redacted_quarantine
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.ingest.staging import stage_lines, strict_recheck
from pipelines.lib.ingest.wipe_guard import refuse_fewer_lines, refuse_to_wipe
from pipelines.lib.lake.paths import events_file, ledger_file, quarantine_file
from pipelines.lib.lake.publish import DayPublish, Fault, StillHeld, recover
from pipelines.lib.lake.sql import connect, load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import accepted_versions, load_event_schemas
from pipelines.lib.schemas.sql_compiler import CompiledSchema, compile_schema
from pipelines.lib.schemas.stored_shape import BRIDGE_COLUMN, check_fits


@dataclass(frozen=True)
class IngestSettings:
    max_line_bytes: int = 1 << 20
    batch_bytes: int = 64 << 20
    memory_limit: str = "2GB"
    threads: int = 2
    quarantine_text_bytes: int = 16 << 10
    # Landing dates whose files a re-ingest may publish without (gone, not retired): an operator's
    # explicit acceptance of their rows' loss, for one run (lib/ingest/wipe_guard.py).
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
    con.execute(generated_sql.checked_all_view(versions))
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
    [(flagged, suspects)] = con.execute(load_sql("ingest/pii_work.sql")).fetchall()
    # A clean day stops here: no line holds a flagged value or one of its own raw ids.
    if flagged or suspects:
        for event_type, found in tables.items():
            schema, older = current[event_type], accepted[event_type]
            con.execute(pii_policy.candidates_query(schema, found, older))
    # Planning the detector takes about half a second: not for a day with nothing to classify.
    [(candidates,)] = con.execute(load_sql("ingest/pii_candidate_count.sql")).fetchall()
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
    con.execute(generated_sql.pii_identifiers_view(schemas))
    con.execute(
        load_sql("ingest/pii_hashes.sql"),
        {
            "pii_ipad": inner,
            "pii_opad": outer,
            "pii_prev_ipad": prev_inner,
            "pii_prev_opad": prev_outer,
        },
    )


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


def events_relation(
    con: duckdb.DuckDBPyConnection, compiled: CompiledSchema, key: PiiKey
) -> duckdb.DuckDBPyRelation:
    """``events_query`` with the day's key bound (its fingerprint and HMAC pads); the connection
    holds the PII macros (``pii_policy.install``)."""
    inner, outer = pii.hmac_pads(key.secret)
    params = {"pii_key_id": key.key_id, "pii_ipad": inner, "pii_opad": outer}
    query = generated_sql.events_query(compiled)
    # DuckDB refuses a bound parameter the statement does not use (a type with no free text).
    return con.sql(query, params={k: v for k, v in params.items() if f"${k}" in query})


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
    con.execute(generated_sql.erased_lines_table(schemas), {"erased": erased})
    con.execute(load_sql("ingest/mark_erased.sql"))


@contextlib.contextmanager
def _connection(settings: IngestSettings, lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    """The run's DuckDB, spilling to a private folder of this run under the lake's work root
    (removed afterwards; a killed run's folder goes when the next run starts:
    lib/lake/workdir.py)."""
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
        stats = stage_lines(con, lake, day, files, settings, log)
        lines_now = {f.path: (f.landing_dt, st.lines) for f, st in zip(files, stats, strict=True)}
        refuse_fewer_lines(lake, day, lines_now, settings.accept_missing_landing, log)
        _register_files(con, files)
        # Lines DuckDB's lenient parser accepted that strict JSON may not.
        strict_recheck(con, "ingest/lenient_lines.sql", "ingest/mark_malformed.sql", settings)
        _check(con, schemas, versions, key, previous)
        _mark_erased(con, schemas, erased)
        # Rejected lines are rare: re-parse them strictly, so a duplicate key or absurd
        # nesting anywhere in them is reported as malformed JSON, whatever else is wrong.
        strict_recheck(
            con, "ingest/rejected_lines.sql", "ingest/mark_rejected_malformed.sql", settings
        )
        ledger = ledger_table(con, day, files, stats, list(schemas), key)
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
            quarantine = redacted_quarantine(con, key, settings, erased, dropped)
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
        stage_lines(con, lake, day, files, settings, lambda _msg: None, only_lines=wanted)
        _register_files(con, files)
        strict_recheck(con, "ingest/lenient_lines.sql", "ingest/mark_malformed.sql", settings)
        schemas = compiled_schemas()
        _route(con, schemas, compiled_versions(schemas))
        strict_recheck(
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
