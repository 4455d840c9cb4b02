"""Erase users from the lake: every stored row that carries their hashes, under any key.

One request: hash each raw id under every known key; find the rows (DuckDB, over only the columns
that can hold them); rewrite each affected partition of ``events/``, ``quarantine/`` and
``contracts/`` without them (file by file, batch by batch, swapped in whole; untouched partitions
are not rewritten); move the erased lines' counts to the ledger's ``erased`` fate, so the ledger
still balances; delete exports made for those users; prove with one more scan that no row holds a
hash; append the audit entry. Rollups are rebuilt by ``rebuild.py``. A second run finds nothing
and rewrites nothing.

Copies left by a publish cut short under ``_publish/staging/`` (``lib/lake/publish.py``) hold rows
too:
before anything is read, each day's pending journal is rolled forward and its leftover staging
removed, under the day's ingest lease (``clear_leftovers``), so no live publisher is disturbed;
the proof scan also reads whatever is under ``_publish/staging/`` then.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lib.ingest.erased_users import move_to_erased
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.lake.paths import contracts_dir, events_dir, ledger_dir, quarantine_dir
from pipelines.lib.lake.publish import STAGING_AREA, clear_leftovers, recover_pending
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.maintenance.compact import CHECKSUM_KEY, ROWS_KEY, SORTED_BY_KEY, TARGET_KEY
from pipelines.lib.privacy.exports import EXPORTS_DIR, exports_holding
from pipelines.lib.privacy.requests import ErasureRequest
from pipelines.lib.schemas.registry import event_types

# A compaction's proof (row count, checksum) no longer holds once rows are removed; the next
# compaction re-sorts and re-stamps the partition.
_STALE_STAMPS = {k.encode() for k in (SORTED_BY_KEY, TARGET_KEY, ROWS_KEY, CHECKSUM_KEY)}


class ErasureIncompleteError(RuntimeError):
    """The proof scan still found the users' hashes after the rewrite."""


@dataclass(frozen=True)
class Rewrite:
    table: str  # events/<type>, quarantine, contracts, ledger, exports
    partition: str  # the folder, relative to the lake root
    day: date | None
    rows_removed: int


@dataclass
class Erasure:
    request: ErasureRequest
    hashes: list[str]
    rewrites: list[Rewrite] = field(default_factory=list)
    proof: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def days(self) -> list[date]:
        return sorted({r.day for r in self.rewrites if r.day and r.table.startswith("events/")})

    def rows_removed(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for r in self.rewrites:
            totals[r.table] += r.rows_removed
        return dict(totals)


@dataclass
class _Found:
    """The users' rows by table and day: event ids, and the ledger's per-file counts."""

    events: dict[str, dict[date, set[str]]] = field(default_factory=dict)
    quarantine: dict[date, set[str]] = field(default_factory=dict)  # "<file>:<line>"
    violations: dict[date, set[tuple[str, str, str]]] = field(default_factory=dict)
    ledger: dict[date, dict[str, Counter[str]]] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)


def erase(
    lake: Lake,
    request: ErasureRequest,
    secrets: list[bytes],
    memory_limit: str = "2GB",
    threads: int = 2,
    log: Callable[[str], None] = lambda _msg: None,
) -> Erasure:
    started = time.monotonic()
    result = Erasure(request, request.hashes(secrets))
    # A publish rolled forward after the erasure would bring back the rows it removes.
    recover_pending(lake, log=log)
    # What killed publishes left in _publish/staging/ (the new version of one killed before its
    # journal, the previous version of one killed after removing it) holds rows too.
    clear_leftovers(lake, log=log)
    with lake_connection(lake, memory_limit, threads) as con:
        found = _find(con, lake, result.hashes)
        for event_type, days in found.events.items():
            for day, ids in sorted(days.items()):
                removed = _rewrite(lake, events_dir(event_type, day), _ids_mask(ids))
                result.rewrites.append(
                    Rewrite(f"events/{event_type}", events_dir(event_type, day), day, removed)
                )
        for day, keys in sorted(found.quarantine.items()):
            removed = _rewrite(lake, quarantine_dir(day), _lines_mask(keys))
            result.rewrites.append(Rewrite("quarantine", quarantine_dir(day), day, removed))
        for day, keys in sorted(found.violations.items()):
            removed = _rewrite(lake, contracts_dir(day), _violations_mask(keys))
            result.rewrites.append(Rewrite("contracts", contracts_dir(day), day, removed))
        for day, per_file in sorted(found.ledger.items()):
            moved = _record_in_ledger(lake, day, per_file)
            result.rewrites.append(Rewrite("ledger", ledger_dir(day), day, moved))
        for folder in exports_holding(lake, result.hashes):
            lake.fs.rm(lake.path(folder), recursive=True)
            result.rewrites.append(Rewrite("exports", folder, None, 1))
        for rewrite in result.rewrites:
            log(f"{rewrite.partition}: {rewrite.rows_removed} row(s) removed")
        result.proof = proof(con, lake, result.hashes)
    if any(result.proof.values()):
        raise ErasureIncompleteError(
            f"request {request.request_id}: after the rewrite the lake still holds the users' "
            f"hashes: {result.proof}"
        )
    result.seconds = time.monotonic() - started
    return result


def proof(con: duckdb.DuckDBPyConnection, lake: Lake, hashes: list[str]) -> dict[str, int]:
    """How many rows of each table still hold one of the hashes: all zero after an erasure."""
    found = _find(con, lake, hashes)
    counts = {
        f"events/{t}": sum(len(ids) for ids in days.values()) for t, days in found.events.items()
    }
    counts["quarantine"] = sum(len(k) for k in found.quarantine.values())
    counts["contracts"] = sum(len(k) for k in found.violations.values())
    counts[EXPORTS_DIR] = len(exports_holding(lake, hashes))
    counts[STAGING_AREA] = _staged_rows_holding(con, lake, hashes)
    return counts


def _staged_rows_holding(con: duckdb.DuckDBPyConnection, lake: Lake, hashes: list[str]) -> int:
    """Rows of any table under ``_publish/staging/`` (normally empty: only a live publish stages)
    that hold one of the hashes in any column."""
    if not hashes:
        return 0
    rows = 0
    for url in lake.glob_urls(f"{STAGING_AREA}/**/*.parquet"):
        rows += con.execute(
            "select count(*) from read_parquet(?) t where exists (select 1 from "
            "unnest(?::varchar[]) u(h) where contains(to_json(t)::varchar, u.h))",
            [url, hashes],
        ).fetchone()[0]
    return rows


def _find(con: duckdb.DuckDBPyConnection, lake: Lake, hashes: list[str]) -> _Found:
    found = _Found()
    for event_type in event_types():
        files = lake.glob_urls(f"events/event_type={event_type}/event_date=*/*.parquet")
        if not files:
            continue
        read_events(con, files).create_view("user_events", replace=True)
        rows = con.sql(load_sql("privacy/user_rows.sql"), params={"hashes": hashes}).fetchall()
        for day, event_id, landing_file in rows:
            found.events.setdefault(event_type, defaultdict(set))[day].add(event_id)
            found.ledger.setdefault(day, defaultdict(Counter))[landing_file][
                f"rows_{event_type}"
            ] += 1
            found.event_ids.add(event_id)
    files = lake.glob_urls("quarantine/event_date=*/*.parquet")
    if files:
        con.read_parquet(files, hive_partitioning=True, union_by_name=True).create_view(
            "quarantined", replace=True
        )
        rows = con.sql(load_sql("privacy/quarantine_rows.sql"), params={"hashes": hashes})
        for day, landing_file, line_no, reason, event_id in rows.fetchall():
            found.quarantine.setdefault(day, set()).add(f"{landing_file}:{line_no}")
            found.ledger.setdefault(day, defaultdict(Counter))[landing_file][
                f"quarantined_{reason}"
            ] += 1
            if event_id:
                found.event_ids.add(event_id)
    files = lake.glob_urls("contracts/event_date=*/*.parquet")
    if files:
        con.read_parquet(files, hive_partitioning=True, union_by_name=True).create_view(
            "violations", replace=True
        )
        rows = con.sql(
            load_sql("privacy/violation_rows.sql"),
            params={"hashes": hashes, "event_ids": sorted(found.event_ids)},
        )
        for day, event_id, family, rule in rows.fetchall():
            found.violations.setdefault(day, set()).add((event_id, family, rule))
    return found


def _ids_mask(ids: set[str]) -> Callable[[pa.RecordBatch], pa.Array]:
    wanted = pa.array(sorted(ids), pa.string())
    return lambda batch: pc.is_in(batch.column("event_id"), value_set=wanted)


def _lines_mask(keys: set[str]) -> Callable[[pa.RecordBatch], pa.Array]:
    wanted = pa.array(sorted(keys), pa.string())

    def mask(batch: pa.RecordBatch) -> pa.Array:
        line = pc.cast(batch.column("line_no"), pa.string())
        key = pc.binary_join_element_wise(batch.column("landing_file"), line, ":")
        return pc.is_in(key, value_set=wanted)

    return mask


def _violations_mask(keys: set[tuple[str, str, str]]) -> Callable[[pa.RecordBatch], pa.Array]:
    wanted = pa.array(sorted("\x1f".join(k) for k in keys), pa.string())

    def mask(batch: pa.RecordBatch) -> pa.Array:
        key = pc.binary_join_element_wise(
            pc.fill_null(batch.column("event_id"), ""),
            batch.column("family"),
            batch.column("rule"),
            "\x1f",
        )
        return pc.is_in(key, value_set=wanted)

    return mask


def _rewrite(lake: Lake, rel_dir: str, drop: Callable[[pa.RecordBatch], pa.Array]) -> int:
    """Rewrite every file of the partition without the rows ``drop`` marks, keeping the files'
    names and order, and publish the folder whole. Returns the rows removed."""
    files = lake.parquet_files(rel_dir)
    removed = 0
    with lake.staged_dir(rel_dir, if_unchanged=files) as staging:
        for info in files:
            name = info.path.rsplit("/", 1)[-1]
            source = pq.ParquetFile(lake.path(info.path), filesystem=lake.fs)
            metadata = {
                k: v
                for k, v in (source.schema_arrow.metadata or {}).items()
                if k not in _STALE_STAMPS
            }
            schema = source.schema_arrow.with_metadata(metadata)
            with pq.ParquetWriter(f"{staging}/{name}", schema, compression="zstd") as writer:
                for batch in source.iter_batches(batch_size=64 * 1024):
                    dropped = drop(batch)
                    removed += pc.sum(pc.cast(dropped, pa.int64())).as_py() or 0
                    writer.write_batch(batch.filter(pc.invert(dropped)).cast(schema))
    return removed


def _record_in_ledger(lake: Lake, day: date, per_file: dict[str, Counter[str]]) -> int:
    """Move the erased lines' counts to the ledger's ``erased`` fate, so lines taken = rows +
    quarantined + duplicates + erased still holds per landing file."""
    rel_dir = ledger_dir(day)
    files = lake.parquet_files(rel_dir)
    if not files:
        return 0
    rebuilt, moved = move_to_erased(lake.read_partition(rel_dir), per_file)
    with lake.staged_dir(rel_dir, if_unchanged=files) as staging:
        pq.write_table(rebuilt, f"{staging}/{files[0].path.rsplit('/', 1)[-1]}", compression="zstd")
    return moved
