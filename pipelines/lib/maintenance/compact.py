"""Compaction: rewrite one event partition (event_type, event_date) into files of about a target
size, sorted by ``request_id`` then ``timestamp_ms`` so row-group statistics prune lookups, and
publish it with the lake's atomic folder swap only after proving it holds the same rows.

* The proof: ``sql/maintenance/partition_checksum.sql`` (row count and an order-independent
  checksum over every column) on the old files and on the staged new ones; if they differ nothing
  is published and ``ChecksumMismatchError`` is raised. Every new file carries the proof and the
  layout in its Parquet key-value metadata (``telemetry.*``), so the partition can be re-verified
  later (``verify_partition``) and a compacted partition is recognised and skipped.
* File names: ``part-NNNNN-<tag>.parquet``, where the tag derives from the rows, the checksum and
  the layout (target size, row group): the same data compacts to the same names (a retry rewrites
  identical files), while a reader that listed a folder before a swap and opens its files after
  gets FileNotFoundError instead of silently mixing another version's files of the same name.
* ``target_file_bytes`` is whatever the caller passes: the 128 MiB - 1 GiB bounds are a user
  setting's, checked by ``CompactionSettings.validate`` (the Dagster resource calls it), so tests
  can compact small partitions into several files.
* A rewrite starts from a listing of the folder and is refused if the folder changed before the
  swap (a re-ingest meanwhile): compacting old data must never undo newer data.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import PART_FILE, events_dir
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import FileInfo, Lake

MIB = 1 << 20
MIN_TARGET_FILE_BYTES = 128 * MIB
MAX_TARGET_FILE_BYTES = 1024 * MIB
DEFAULT_TARGET_FILE_BYTES = 256 * MIB
DEFAULT_MAX_FILES = 8
# A file counts as oversized above twice the target: the writer cuts a file only after a whole
# row group, so a compacted file may exceed the target by up to one row group.
OVERSIZE_FACTOR = 2
# DuckDB's own default row group: small enough for min/max statistics on request_id to narrow a
# lookup to a few groups, large enough to compress well.
ROW_GROUP_ROWS = 122_880

SORT_KEY = ("request_id", "timestamp_ms", "event_id")
SORTED_BY_KEY = "telemetry.sorted_by"
TARGET_KEY = "telemetry.target_file_bytes"
ROWS_KEY = "telemetry.partition_rows"
CHECKSUM_KEY = "telemetry.partition_checksum"


class ChecksumMismatchError(RuntimeError):
    """The staged rewrite does not hold the partition's rows: it was not published."""

    def __init__(self, message: str, before: Fingerprint, after: Fingerprint):
        super().__init__(message)
        self.before = before
        self.after = after


@dataclass(frozen=True)
class CompactionSettings:
    """The compaction config section (``CompactionResource`` carries it into runs)."""

    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    max_files: int = DEFAULT_MAX_FILES  # more files than this in a partition: compact it
    row_group_rows: int = ROW_GROUP_ROWS
    memory_limit: str = "2GB"
    threads: int = 2

    @property
    def max_file_bytes(self) -> int:
        return OVERSIZE_FACTOR * self.target_file_bytes

    def validate(self) -> CompactionSettings:
        if not MIN_TARGET_FILE_BYTES <= self.target_file_bytes <= MAX_TARGET_FILE_BYTES:
            raise ConfigError(
                f"compaction target_file_bytes={self.target_file_bytes} is outside "
                f"{MIN_TARGET_FILE_BYTES} (128 MiB) .. {MAX_TARGET_FILE_BYTES} (1 GiB): set "
                "target_file_bytes on the `compaction` resource"
            )
        if self.max_files < 1:
            raise ConfigError(
                f"compaction max_files={self.max_files} must be >= 1: set max_files on the "
                "`compaction` resource"
            )
        return self


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    checksum: int  # sum of row hashes (sql/maintenance/partition_checksum.sql), may exceed 64 bits


@dataclass(frozen=True)
class CompactionResult:
    event_type: str
    day: date
    compacted: bool  # False: the partition was already compact, nothing was rewritten
    files_before: int
    bytes_before: int
    files_after: int
    bytes_after: int
    before: Fingerprint
    after: Fingerprint
    seconds: float

    @property
    def passed(self) -> bool:
        return self.before == self.after

    def metadata(self) -> dict[str, Any]:
        return {
            "event_date": self.day.isoformat(),
            "compacted": self.compacted,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "rows_before": self.before.rows,
            "rows_after": self.after.rows,
            # Strings: a sum of 64-bit hashes does not fit Dagster's integer metadata.
            "checksum_before": str(self.before.checksum),
            "checksum_after": str(self.after.checksum),
            "sorted_by": ", ".join(SORT_KEY),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Verification:
    """A partition re-checked against the proof its compaction stamped in its files."""

    event_type: str
    day: date
    files: int
    compacted: bool  # False: not compacted since it was last written; nothing to compare
    stamped: Fingerprint | None
    found: Fingerprint | None

    @property
    def passed(self) -> bool:
        return not self.compacted or self.stamped == self.found

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "event_date": self.day.isoformat(),
            "files": self.files,
            "compacted": self.compacted,
        }
        if self.stamped is not None and self.found is not None:
            meta |= {
                "rows_stamped": self.stamped.rows,
                "rows_found": self.found.rows,
                "checksum_stamped": str(self.stamped.checksum),
                "checksum_found": str(self.found.checksum),
            }
        return meta


def partition_files(lake: Lake, event_type: str, day: date) -> list[FileInfo]:
    return lake.parquet_files(events_dir(event_type, day))


def _stamp(lake: Lake, file: FileInfo) -> dict[str, str]:
    """A file's ``telemetry.*`` key-value metadata (read from its footer only)."""
    raw = pq.ParquetFile(lake.path(file.path), filesystem=lake.fs).metadata.metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k.decode().startswith("telemetry.")}


def _stamped_fingerprint(stamps: list[dict[str, str]]) -> Fingerprint | None:
    """The proof every file of a compacted partition carries; None if any file lacks it (the
    folder was last written by ingest, not by a compaction)."""
    proofs = {(s.get(ROWS_KEY), s.get(CHECKSUM_KEY)) for s in stamps}
    if len(proofs) != 1 or None in next(iter(proofs)):
        return None
    rows, checksum = next(iter(proofs))
    return Fingerprint(int(rows), int(checksum))


def _is_compact(lake: Lake, files: list[FileInfo], settings: CompactionSettings) -> bool:
    """Written by one compaction with this target, so sorted and sized (a file may pass the
    target by a row group: that is what this target gives, not a reason to rewrite it)."""
    stamps = [_stamp(lake, f) for f in files]
    return _stamped_fingerprint(stamps) is not None and all(
        s.get(SORTED_BY_KEY) == ",".join(SORT_KEY)
        and s.get(TARGET_KEY) == str(settings.target_file_bytes)
        for s in stamps
    )


def needs_compaction(lake: Lake, event_type: str, day: date, settings: CompactionSettings) -> bool:
    """The automatic step's test: more than ``max_files`` files or a file above the max size,
    unless a compaction with these settings already wrote them (a big day is many files)."""
    files = partition_files(lake, event_type, day)
    too_many = len(files) > settings.max_files
    oversized = any(f.size_bytes > settings.max_file_bytes for f in files)
    return (too_many or oversized) and not _is_compact(lake, files, settings)


def _fingerprint(con: duckdb.DuckDBPyConnection, urls: list[str]) -> Fingerprint:
    [(rows, checksum)] = con.sql(
        load_sql("maintenance/partition_checksum.sql"), params={"files": urls}
    ).fetchall()
    return Fingerprint(int(rows), int(checksum))


def _file_tag(before: Fingerprint, settings: CompactionSettings) -> str:
    layout = f"{settings.target_file_bytes}:{settings.row_group_rows}"
    return hashlib.sha256(f"{before.rows}:{before.checksum}:{layout}".encode()).hexdigest()[:12]


def _write_sorted(
    con: duckdb.DuckDBPyConnection,
    urls: list[str],
    schema: pa.Schema,
    folder: str,
    tag: str,
    settings: CompactionSettings,
    split: bool,
) -> list[str]:
    """Stream the sorted rows into ``folder``, starting a new file once one reaches the target
    (with ``split``; else one file of row groups, named as ingest names it); returns the local
    paths written, in order."""
    reader = con.sql(
        load_sql("maintenance/compaction_order.sql"), params={"files": urls}
    ).to_arrow_reader(ROW_GROUP_ROWS)
    plain = pa.schema(list(schema))  # the batches' schema, without the stamp
    paths: list[str] = []
    writer: pq.ParquetWriter | None = None
    sink: pa.NativeFile | None = None
    try:
        for batch in reader:
            # DuckDB hands out whole vectors: cut them to row groups, so a file can end after any.
            for offset in range(0, batch.num_rows, settings.row_group_rows):
                if writer is None:
                    name = f"part-{len(paths):05d}-{tag}.parquet" if split else PART_FILE
                    paths.append(os.path.join(folder, name))
                    sink = pa.OSFile(paths[-1], "wb")
                    writer = pq.ParquetWriter(sink, schema, compression="zstd")
                group = batch.slice(offset, settings.row_group_rows).cast(plain)
                writer.write_batch(group, row_group_size=settings.row_group_rows)
                if split and sink.tell() >= settings.target_file_bytes:
                    writer.close()
                    sink.close()
                    writer = sink = None
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    if not paths:  # a day without events keeps one empty file, as ingest writes it
        paths.append(os.path.join(folder, f"part-00000-{tag}.parquet" if split else PART_FILE))
        pq.write_table(schema.empty_table(), paths[0], compression="zstd")
    return paths


def _source_schema(lake: Lake, files: list[FileInfo]) -> pa.Schema:
    """The partition's column types as stored (the new files keep them exactly)."""
    schemas = [pq.read_schema(lake.path(f.path), filesystem=lake.fs) for f in files]
    return pa.unify_schemas([s.remove_metadata() for s in schemas])


def compact_partition(
    lake: Lake,
    event_type: str,
    day: date,
    settings: CompactionSettings | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> CompactionResult:
    """Rewrite one event partition sorted into files of about ``settings.target_file_bytes``,
    verify the rows, publish atomically; skip it if it is already compact."""
    settings = settings or CompactionSettings()
    started = time.monotonic()
    rel = events_dir(event_type, day)
    files = lake.parquet_files(rel)
    if not files:
        raise FileNotFoundError(
            f"no {event_type} files for {day}: materialise the ingest partition first"
        )
    size_before = sum(f.size_bytes for f in files)
    if _is_compact(lake, files, settings):
        log(f"{event_type} {day}: already compact ({len(files)} files), skipped")
        before = after = _stamped_fingerprint([_stamp(lake, f) for f in files])
        compacted, files_after, size_after = False, len(files), size_before
    else:
        written, size_after, before, after = _rewrite(
            lake, rel, files, settings, f"{event_type} {day}"
        )
        compacted, files_after = True, len(written)
        log(
            f"{event_type} {day}: {len(files)} files ({size_before} bytes) -> {len(written)} "
            f"files ({size_after} bytes), {before.rows} rows"
        )
    return CompactionResult(
        event_type=event_type,
        day=day,
        compacted=compacted,
        files_before=len(files),
        bytes_before=size_before,
        files_after=files_after,
        bytes_after=size_after,
        before=before,
        after=after,
        seconds=time.monotonic() - started,
    )


def _rewrite(
    lake: Lake, rel: str, files: list[FileInfo], settings: CompactionSettings, label: str
) -> tuple[list[str], int, Fingerprint, Fingerprint]:
    """Write the partition's rows sorted into a staging folder, check they are the same rows, and
    publish them in place of ``files`` (refused if the partition changed meanwhile). Returns the
    files written, their bytes, and the partition's fingerprint before and after."""
    urls = [lake.url(f.path) for f in files]
    schema = _source_schema(lake, files)
    with lake_connection(lake, settings.memory_limit, settings.threads) as con:
        before = _fingerprint(con, urls)
        stamp = {
            SORTED_BY_KEY: ",".join(SORT_KEY),
            TARGET_KEY: str(settings.target_file_bytes),
            ROWS_KEY: str(before.rows),
            CHECKSUM_KEY: str(before.checksum),
        }
        with lake.staged_dir(rel, if_unchanged=files) as staging:
            written = _write_sorted(
                con,
                urls,
                schema.with_metadata(stamp),
                staging,
                _file_tag(before, settings),
                settings,
                # S3 has no rename: a partition kept as one object under ingest's name is
                # replaced by one PUT, which no reader can see half of (lib/lake/storage.py).
                split=lake.is_local,
            )
            after = _fingerprint(con, written)
            if after != before:
                raise ChecksumMismatchError(
                    f"{label}: the rewrite holds {after.rows} rows (checksum "
                    f"{after.checksum}), the partition {before.rows} (checksum {before.checksum})"
                    ": nothing was published",
                    before,
                    after,
                )
            # Measured here: leaving the block publishes (moves) the staged files.
            size_after = sum(os.path.getsize(p) for p in written)
    return written, size_after, before, after


def verify_partition(
    lake: Lake, event_type: str, day: date, settings: CompactionSettings | None = None
) -> Verification:
    """Re-check a compacted partition against the proof stamped in its files (a full read);
    a partition not compacted since it was last written has nothing to compare (footers only)."""
    settings = settings or CompactionSettings()
    files = partition_files(lake, event_type, day)
    if not files:
        raise FileNotFoundError(
            f"no {event_type} files for {day}: materialise the ingest partition first"
        )
    stamped = _stamped_fingerprint([_stamp(lake, f) for f in files])
    if stamped is None:
        return Verification(event_type, day, len(files), False, None, None)
    with lake_connection(lake, settings.memory_limit, settings.threads) as con:
        found = _fingerprint(con, [lake.url(f.path) for f in files])
    return Verification(event_type, day, len(files), True, stamped, found)
