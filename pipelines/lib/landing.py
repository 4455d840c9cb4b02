"""Read landing files as batches of raw lines, without trusting them to be UTF-8, JSON or complete.

A line is the bytes up to a ``\\n`` (the last line may lack one). Batches are Arrow tables
``(line_no, raw, line_bytes)`` built straight over the decompressed buffer with numpy, so no Python
object is created per line. ``raw`` keeps the line's trailing newline (JSON ignores it, and slicing
it off would copy the buffer); ``line_bytes`` is the length without it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa

from pipelines.lib.paths import landing_dir
from pipelines.lib.storage import Lake

LANDING_SUFFIXES = (".jsonl", ".jsonl.gz")
# Left in landing/dt=X/ by the retention job when it deletes the folder's files (see
# docs/contracts/pii_retention.md): the partitions reading X can no longer be rebuilt whole.
RETIRED_MARKER = "_RETIRED.json"
_READ_BLOCK = 8 << 20
# How much of an oversize line is kept (for the quarantine's redacted excerpt).
OVERSIZE_HEAD_BYTES = 64 << 10

BATCH_SCHEMA = pa.schema(
    [("line_no", pa.int64()), ("raw", pa.large_binary()), ("line_bytes", pa.int64())]
)


@dataclass(frozen=True)
class LandingFile:
    path: str
    landing_dt: date
    size_bytes: int


class LandingRetiredError(RuntimeError):
    """A landing date the caller must read was deleted by retention."""


@dataclass
class ReadStats:
    """What reading one file found, beyond its lines."""

    lines: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)


def list_landing_files(lake: Lake, dts: list[date]) -> list[LandingFile]:
    """Landing files of the given arrival dates, in (dt, name) order: the order that decides which
    copy of a duplicated event is the original."""
    found = []
    for dt in sorted(dts):
        infos = lake.list_files(landing_dir(dt))
        refuse_retired(lake, dt, [info.path for info in infos])
        found += [
            LandingFile(info.path, dt, info.size_bytes)
            for info in infos
            if info.path.endswith(LANDING_SUFFIXES)
        ]
    return found


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


def _blocks(lake: Lake, f: LandingFile, stats: ReadStats) -> Iterator[bytes]:
    """Decompressed blocks of a file. A truncated or corrupt gzip yields what it could decode."""
    gz = f.path.endswith(".gz")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
    with lake.open(f.path) as handle:
        while True:
            block = handle.read(_READ_BLOCK)
            if not block:
                break
            if inflater is None:
                yield block
                continue
            try:
                while block:
                    yield inflater.decompress(block)
                    # Concatenated gzip members are legal: start a new one on the leftover bytes.
                    block = inflater.unused_data if inflater.eof else b""
                    if block:
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            except zlib.error as exc:
                stats.truncated = True
                stats.errors.append(f"corrupt gzip data: {exc}")
                return
    if inflater is not None:
        tail = inflater.flush()
        if tail:
            yield tail
        if not inflater.eof:
            stats.truncated = True
            stats.errors.append("gzip stream ends before its end marker (truncated file)")


def _to_batch(buf: bytes, first_line: int, oversize: dict[int, int]) -> pa.Table:
    data = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if len(buf) and (len(ends) == 0 or ends[-1] != len(buf)):
        ends = np.append(ends, len(buf))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    count = len(offsets) - 1
    raw = pa.Array.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )
    line_bytes = np.diff(offsets) - (data[ends - 1] == 10) if count else np.zeros(0, np.int64)
    for index, true_length in oversize.items():
        line_bytes[index] = true_length
    line_no = np.arange(first_line, first_line + count, dtype=np.int64)
    return pa.table([line_no, raw, line_bytes], schema=BATCH_SCHEMA)


def iter_line_batches(
    lake: Lake, f: LandingFile, stats: ReadStats, *, batch_bytes: int, max_line_bytes: int
) -> Iterator[pa.Table]:
    """Batches of about ``batch_bytes`` of whole lines; line numbers start at 1.

    A line longer than ``max(batch_bytes, max_line_bytes)`` is not held in memory whole: its first
    ``OVERSIZE_HEAD_BYTES`` are kept and its true length is recorded, so it is still counted and
    quarantined as ``line_too_large``.
    """
    limit = max(batch_bytes, max_line_bytes + 1)
    pending = bytearray()
    oversize: dict[int, int] = {}  # index within `pending`'s lines -> true byte length
    skipping: int | None = None  # bytes of an oversize line seen so far, while skipping its tail
    next_line = 1

    def flush(final: bool) -> Iterator[pa.Table]:
        nonlocal pending, next_line, oversize
        cut = len(pending) if final else pending.rfind(b"\n") + 1
        if cut <= 0:
            return
        chunk = bytes(pending[:cut])
        del pending[:cut]
        batch = _to_batch(chunk, next_line, oversize)
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
                line_index = pending.count(b"\n")
                oversize[line_index] = OVERSIZE_HEAD_BYTES + skipping
                skipping = None
                continue
            pending += block
            block = b""
            if len(pending) >= limit:
                yield from flush(final=False)
                if len(pending) >= limit:
                    # No newline in a whole batch: one oversize line. Keep its head, skip the rest.
                    skipping = len(pending) - OVERSIZE_HEAD_BYTES
                    del pending[OVERSIZE_HEAD_BYTES:]
    if skipping is not None:
        oversize[pending.count(b"\n")] = OVERSIZE_HEAD_BYTES + skipping
    yield from flush(final=True)
