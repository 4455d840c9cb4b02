"""Read landing files as batches of raw lines, without trusting them to be UTF-8, JSON or complete.

A line is the bytes up to a ``\\n`` (the last line may lack one). Batches are Arrow tables
``(line_no, raw, line_bytes, blank)`` built straight over the decompressed buffer with numpy, so no
Python object is created per line. ``raw`` keeps the line's trailing newline (JSON ignores it, and
slicing it off would copy the buffer); ``line_bytes`` is the length without it; ``blank`` marks a
line of nothing but spaces, tabs and carriage returns (ingest counts those instead of staging them).

Memory is bounded whatever the file holds: files are read and inflated in blocks of at most
``_READ_BLOCK`` bytes (a gzip bomb never inflates more than that at once), a batch holds at most
about ``batch_bytes`` of lines and at most about ``batch_lines`` lines, and a line longer than a
batch keeps only its first ``OVERSIZE_HEAD_BYTES``.

Every entry of a landing folder whose name ends in a landing suffix is a landing file, and gets a
ledger row whether or not it can be read (``LandingFile.unread`` says why not). Whether a file is
gzip is decided by its first bytes, not its name.
"""

from __future__ import annotations

import itertools
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO, Any

import numpy as np
import pyarrow as pa

from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.lake.storage import Lake

LANDING_SUFFIXES = (".jsonl", ".jsonl.gz")
GZIP_MAGIC = b"\x1f\x8b"
# Left in landing/dt=X/ by the retention job when it deletes the folder's files (see
# docs/contracts/pii_retention.md): the partitions reading X can no longer be rebuilt whole.
RETIRED_MARKER = "_RETIRED.json"
# The most bytes read from a file, or inflated from it, in one step.
_READ_BLOCK = 1 << 20
# How much of an oversize line is kept (for the quarantine's redacted excerpt).
OVERSIZE_HEAD_BYTES = 64 << 10
# The most lines a batch holds (about: one more block's lines may join the last): a file of
# millions of one-byte lines makes batches of many lines and few bytes.
BATCH_LINES = 1 << 20

BATCH_SCHEMA = pa.schema(
    [
        ("line_no", pa.int64()),
        ("raw", pa.large_binary()),
        ("line_bytes", pa.int64()),
        ("blank", pa.bool_()),
    ]
)

# Why a landing file was not read (its ledger row says so, in `file_errors`).
LINK_OUTSIDE = "symlink leads outside landing/: not read"
LINK_DANGLING = "symlink leads to nothing (its target does not exist): not read"
NOT_A_FILE = "not a regular file (a folder, a pipe or a device): not read"
UNREAD_REASONS = (LINK_OUTSIDE, LINK_DANGLING, NOT_A_FILE)
# What reading a file found about its format (also in `file_errors`).
NAMED_GZ_NOT_GZIP = "named .gz but not gzip (no 1f 8b header): read as plain text"
GZIP_NOT_NAMED_GZ = "gzip data (1f 8b header) in a file not named .gz: inflated"

# Partition D reads landing dates D-1 (clocks running ahead) .. D+2 (the late-arrival window).
READS_DAYS_BEFORE = 1
READS_DAYS_AFTER = 2


def landing_dates(day: date) -> list[date]:
    return [day + timedelta(days=n) for n in range(-READS_DAYS_BEFORE, READS_DAYS_AFTER + 1)]


def reading_partitions(landing_dt: date) -> list[date]:
    """The partitions that read a landing date (the inverse of ``landing_dates``)."""
    return [landing_dt + timedelta(days=n) for n in range(-READS_DAYS_AFTER, READS_DAYS_BEFORE + 1)]


@dataclass(frozen=True)
class LandingFile:
    """One entry of a landing folder. ``path`` is how the lake records it (relative to the root;
    a non-UTF-8 name written with ``\\xNN`` escapes); ``source`` is the name to open when that
    differs; ``unread`` is why the file is not read at all (it still gets a ledger row)."""

    path: str
    landing_dt: date
    size_bytes: int
    source: str = ""
    unread: str | None = None

    @property
    def open_path(self) -> str:
        return self.source or self.path


class LandingRetiredError(RuntimeError):
    """A landing date the caller must read was deleted by retention."""


@dataclass
class ReadStats:
    """What reading one file found, beyond its lines. ``truncated``: the file could not be read to
    its end (unreadable, corrupt or cut gzip); ``errors``: every problem and format surprise, for
    the ledger's `file_errors`; ``blank_lines``: filled by ingest's staging (``blank`` lines)."""

    lines: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)
    blank_lines: int = 0


def recorded_name(name: str) -> str:
    """``name`` as the lake records it: a file name that is not UTF-8 (Python lists its
    undecodable bytes as lone surrogates, which no Parquet, JSON or log line accepts) with each
    undecodable byte written as ``\\xNN`` and each backslash doubled (a name holding a backslash
    is written that way too); any other name as it is."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if "\\" not in name:
            return name
    # A literal backslash is doubled, so that a file named "x\\xff.jsonl" (seven characters)
    # and one named x, byte 0xFF, ".jsonl" never record as the same path.
    return os.fsencode(name).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def rewrite_record(path: str) -> str:
    """Where the record of an erasure's rewrite of landing file ``path`` (as the lake records it)
    is kept: beside it, dot-named, so no listing takes it for a landing file. The refuse-to-wipe
    guard (lib/ingest/wipe_guard.py) reads it: a file that shrank by an erasure was not lost."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/.{name}.rewritten.json"


def landing_files(lake: Lake, dt: date) -> list[LandingFile]:
    """Every landing file of arrival date ``dt``, by name: each entry whose name ends in a landing
    suffix (other names, e.g. an upload's temporary file, are not landing files), readable or not.
    Dot-named entries are ignored."""
    return _landing_files(lake, dt, _entries(lake, landing_dir(dt)))


def list_landing_files(lake: Lake, dts: list[date]) -> list[LandingFile]:
    """Landing files of the given arrival dates, in (dt, name) order: the order that decides which
    copy of a duplicated event is the original."""
    found = []
    for dt in sorted(dts):
        entries = _entries(lake, landing_dir(dt))
        refuse_retired(lake, dt, [_relative(lake, e) for e in entries])
        found += _landing_files(lake, dt, entries)
    return found


def _entries(lake: Lake, rel_dir: str) -> list[dict[str, Any]]:
    # Listings are cached by fsspec; landing changes under us, so re-read.
    lake.fs.invalidate_cache()
    try:
        return lake.fs.ls(lake.path(rel_dir), detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _relative(lake: Lake, entry: dict[str, Any]) -> str:
    prefix = lake.path("") + "/"
    name = entry["name"].rstrip("/")
    return name[len(prefix) :] if name.startswith(prefix) else name


def _landing_files(lake: Lake, dt: date, entries: list[dict[str, Any]]) -> list[LandingFile]:
    found = [f for entry in entries if (f := _landing_file(lake, dt, entry)) is not None]
    return sorted(found, key=lambda f: f.path)


def _landing_file(lake: Lake, dt: date, entry: dict[str, Any]) -> LandingFile | None:
    source = _relative(lake, entry)
    base = source.rsplit("/", 1)[-1]
    if base.startswith(".") or not base.endswith(LANDING_SUFFIXES):
        return None
    path = recorded_name(source)
    size = int(entry.get("size") or 0)
    unread = None
    if lake.is_local:
        unread, size = _local_fate(lake, source, size)
    elif entry.get("type") != "file":
        unread, size = NOT_A_FILE, 0
    return LandingFile(path, dt, size, source if source != path else "", unread)


def _local_fate(lake: Lake, source: str, size: int) -> tuple[str | None, int]:
    """Why a local landing entry is not read (None: it is read), and its size. A symlink (or a
    file in a symlinked folder) is followed only when it resolves inside landing/."""
    full = lake.path(source)
    real = os.path.realpath(full)
    root = os.path.realpath(lake.path(source.split("/", 1)[0]))  # landing/
    if not os.path.exists(full):  # follows links
        # A file gone since the listing is left to the reader, which records why it failed.
        return (LINK_DANGLING, 0) if os.path.islink(full) else (None, size)
    if not real.startswith(root + os.sep):
        return LINK_OUTSIDE, 0
    if not os.path.isfile(real):
        return NOT_A_FILE, 0
    try:
        return None, os.path.getsize(real)
    except OSError:
        return None, size


def refuse_retired(lake: Lake, dt: date, paths: list[str]) -> None:
    """Fail before anything is written when landing date ``dt`` was retired: a partition rebuilt
    without its lines would silently lose them, so the events already stored stay final."""
    marker = f"{landing_dir(dt)}/{RETIRED_MARKER}"
    if marker not in paths:
        return
    with lake.open(marker) as handle:
        tombstone = json.load(handle)
    raise LandingRetiredError(
        f"{marker}: retention deleted the landing files of {dt} at {tombstone.get('retired_at')} "
        f"(run {tombstone.get('run_id')}), so a partition that reads them cannot be re-ingested "
        "without losing their lines; its stored events are final. To re-ingest it, restore the "
        f"landing files and delete {marker}."
    )


def _why(exc: OSError) -> str:
    # Never the file name: it may not be UTF-8, and the ledger row already names the file.
    return exc.strerror or type(exc).__name__


def _reads(handle: IO[bytes], stats: ReadStats) -> Iterator[bytes]:
    while True:
        try:
            block = handle.read(_READ_BLOCK)
        except OSError as exc:
            stats.truncated = True
            stats.errors.append(f"read failed: {_why(exc)}")
            return
        if not block:
            return
        yield block


def _inflate(chunks: Iterator[bytes], stats: ReadStats) -> Iterator[bytes]:
    """Gzip data inflated in blocks of at most ``_READ_BLOCK`` bytes, however much one compressed
    block expands to. Concatenated members are legal; a corrupt or cut stream yields what it could
    decode and is recorded as truncated."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for data in chunks:
        more = False  # the inflater may hold output it had no room for
        while data or more:
            if inflater.eof:  # the member ended and bytes follow: a new member begins
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = inflater.decompress(data, _READ_BLOCK)
            except zlib.error as exc:
                stats.truncated = True
                stats.errors.append(f"corrupt gzip data: {exc}")
                return
            if out:
                yield out
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            more = not inflater.eof and len(out) == _READ_BLOCK
    if not inflater.eof:
        stats.truncated = True
        stats.errors.append("gzip stream ends before its end marker (truncated file)")


def _blocks(lake: Lake, f: LandingFile, stats: ReadStats) -> Iterator[bytes]:
    """Decoded blocks of a file, each at most ``_READ_BLOCK`` bytes. A file that cannot be read,
    or read to its end, yields what it could and says why in ``stats``."""
    if f.unread:
        stats.errors.append(f.unread)
        return
    try:
        handle = lake.open(f.open_path)
    except OSError as exc:
        stats.truncated = True
        stats.errors.append(f"could not be opened: {_why(exc)}")
        return
    with handle:
        if lake.is_local and not _opened_inside_landing(lake, f, handle):
            # Swapped for a link leading out after the listing checked it: not read.
            stats.truncated = True
            stats.errors.append(LINK_OUTSIDE)
            return
        chunks = _reads(handle, stats)
        first = next(chunks, b"")
        if not first:
            return
        gz = first[: len(GZIP_MAGIC)] == GZIP_MAGIC
        if gz != f.path.endswith(".gz"):
            stats.errors.append(GZIP_NOT_NAMED_GZ if gz else NAMED_GZ_NOT_GZIP)
        chunks = itertools.chain([first], chunks)
        yield from _inflate(chunks, stats) if gz else chunks


def _opened_inside_landing(lake: Lake, f: LandingFile, handle: IO[bytes]) -> bool:
    """Whether the file actually opened lies inside landing/: the listing checked the name, but
    a producer may swap it for a link between that check and the open. Linux names an open
    file's real path in /proc; elsewhere the listing's check stands alone."""
    try:
        real = os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except (OSError, AttributeError, ValueError):
        return True
    root = os.path.realpath(lake.path(f.open_path.split("/", 1)[0]))
    return real.startswith(root + os.sep)


# Bytes that may make up a blank line: JSON white space.
_NOT_BLANK = np.ones(256, dtype=bool)
_NOT_BLANK[[ord(" "), ord("\t"), ord("\r"), ord("\n")]] = False


def _blank(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Which lines (``data[offsets[i]:offsets[i+1]]``, none empty) hold only white space."""
    starts = offsets[:-1]
    if not len(starts):
        return np.zeros(0, dtype=bool)
    # A line that starts with another byte is not blank: for JSON lines that settles them all.
    if _NOT_BLANK[data[starts]].all():
        return np.zeros(len(starts), dtype=bool)
    return ~np.logical_or.reduceat(_NOT_BLANK[data], starts)


def _heads_only(
    data: np.ndarray, offsets: np.ndarray, line_bytes: np.ndarray, max_line_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The buffer with every line over ``max_line_bytes`` cut to its first
    ``OVERSIZE_HEAD_BYTES`` (and its newline), and the new offsets: such a line is quarantined as
    ``line_too_large`` and only its head is ever shown, so only its head goes on to staging. A batch
    holds few such lines (at most ``batch_bytes / max_line_bytes``)."""
    long = np.flatnonzero(line_bytes > max(max_line_bytes, OVERSIZE_HEAD_BYTES))
    if not len(long):
        return data, offsets
    keep = np.ones(len(data), dtype=bool)
    for index in long:
        keep[offsets[index] + OVERSIZE_HEAD_BYTES : offsets[index] + line_bytes[index]] = False
    kept = np.diff(offsets)
    kept[long] -= line_bytes[long] - OVERSIZE_HEAD_BYTES
    return data[keep], np.concatenate(([0], np.cumsum(kept))).astype(np.int64)


def _to_batch(
    buf: bytes, first_line: int, oversize: dict[int, int], max_line_bytes: int
) -> pa.Table:
    data = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if len(buf) and (len(ends) == 0 or ends[-1] != len(buf)):
        ends = np.append(ends, len(buf))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    count = len(offsets) - 1
    line_bytes = np.diff(offsets) - (data[ends - 1] == 10) if count else np.zeros(0, np.int64)
    blank = _blank(data, offsets)
    data, offsets = _heads_only(data, offsets, line_bytes, max_line_bytes)
    for index, true_length in oversize.items():
        line_bytes[index] = true_length
        blank[index] = False
    blank &= line_bytes <= max_line_bytes  # a line over the limit is too large, whatever it holds
    raw = pa.Array.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    line_no = np.arange(first_line, first_line + count, dtype=np.int64)
    return pa.table([line_no, raw, line_bytes, blank], schema=BATCH_SCHEMA)


def iter_line_batches(
    lake: Lake,
    f: LandingFile,
    stats: ReadStats,
    *,
    batch_bytes: int,
    max_line_bytes: int,
    batch_lines: int = BATCH_LINES,
) -> Iterator[pa.Table]:
    """Batches of about ``batch_bytes`` (and at most about ``batch_lines``) of whole lines; line
    numbers start at 1.

    A line longer than ``max_line_bytes`` keeps only its first ``OVERSIZE_HEAD_BYTES`` (and its
    newline) in its batch, and its true length is recorded, so it is still counted and quarantined
    as ``line_too_large``; one longer than ``batch_bytes`` is never held in memory whole.
    """
    limit = max(batch_bytes, max_line_bytes + 1)
    pending = bytearray()
    newlines = 0  # in `pending`
    oversize: dict[int, int] = {}  # index within `pending`'s lines -> true byte length
    skipping: int | None = None  # bytes of an oversize line seen so far, while skipping its tail
    next_line = 1

    def flush(final: bool) -> Iterator[pa.Table]:
        nonlocal pending, next_line, oversize, newlines
        cut = len(pending) if final else pending.rfind(b"\n") + 1
        if cut <= 0:
            return
        chunk = bytes(pending[:cut])
        del pending[:cut]
        newlines = 0  # what is left has none (or is the end)
        batch = _to_batch(chunk, next_line, oversize, max_line_bytes)
        oversize = {}
        next_line += batch.num_rows
        stats.lines += batch.num_rows
        yield batch

    for block in _blocks(lake, f, stats):
        while block:
            if skipping is not None:
                newline = block.find(b"\n")
                if newline < 0:
                    skipping += len(block)
                    break
                skipping += newline
                block = block[newline:]
                oversize[newlines] = OVERSIZE_HEAD_BYTES + skipping
                skipping = None
                continue
            pending += block
            newlines += block.count(b"\n")
            block = b""
            if len(pending) >= limit or newlines >= batch_lines:
                yield from flush(final=False)
                if len(pending) >= limit:
                    # No newline in a whole batch: one oversize line. Keep its head, skip the rest.
                    skipping = len(pending) - OVERSIZE_HEAD_BYTES
                    del pending[OVERSIZE_HEAD_BYTES:]
    if skipping is not None:
        oversize[newlines] = OVERSIZE_HEAD_BYTES + skipping
    yield from flush(final=True)
