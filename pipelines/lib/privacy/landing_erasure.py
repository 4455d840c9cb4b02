"""Optionally, erase users from ``landing/`` too: rewrite each landing file without the lines whose
``user_id`` is one of the raw ids (landing holds raw lines, so the match is on the raw value).

A rewritten file changes size, so the landing sensor re-runs every partition that reads it, and
their ledgers account for the file as it now is. Only the ``user_id`` field is matched: an id typed
into free text stays, as it does in the quarantine's scrubbing.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.ingest.landing import (
    LandingFile,
    ReadStats,
    iter_line_batches,
    list_landing_files,
    rewrite_record,
)
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake

_WHOLE_LINES = 1 << 62  # never cut a line short: the file is written back


@dataclass(frozen=True)
class LandingRewrite:
    path: str
    lines_removed: int


def scrub_landing(lake: Lake, user_ids: list[str], dts: list[date]) -> list[LandingRewrite]:
    rewrites = []
    with lake_connection(lake, memory_limit="512MB", threads=1) as con:
        for landing in list_landing_files(lake, dts):
            try:
                removed = _scrub_file(con, lake, landing, user_ids)
            except _Unchanged:
                continue
            rewrites.append(LandingRewrite(landing.path, removed))
    return rewrites


def _scrub_file(
    con: duckdb.DuckDBPyConnection, lake: Lake, landing: LandingFile, user_ids: list[str]
) -> int:
    removed = 0
    gz = landing.path.endswith(".gz")
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    stats = ReadStats()
    with lake.staged_file(landing.open_path) as local, open(local, "wb") as out:
        for batch in iter_line_batches(
            lake, landing, stats, batch_bytes=64 << 20, max_line_bytes=_WHOLE_LINES
        ):
            con.register("line_batch", batch)
            drop = con.sql(
                load_sql("privacy/landing_lines.sql"), params={"user_ids": user_ids}
            ).to_arrow_table()["erased"]
            con.unregister("line_batch")
            removed += pc.sum(pc.cast(drop, pa.int64())).as_py() or 0
            data = _contiguous_bytes(pc.filter(batch["raw"], pc.invert(drop)).combine_chunks())
            out.write(packer.compress(data) if gz else data)
        if gz:
            out.write(packer.flush())
        if not removed:
            raise _Unchanged  # leaves the file as it is: staged_file publishes nothing
    record = {
        "lines_after": stats.lines - removed,
        "bytes_after": lake.fs.size(lake.path(landing.open_path)),
        "lines_removed": removed,
    }
    with lake.staged_file(rewrite_record(landing.path)) as local:
        Path(local).write_text(json.dumps(record), encoding="utf-8")
    return removed


class _Unchanged(Exception):
    """Raised inside ``staged_file`` to leave a file without the users' lines untouched."""


def _contiguous_bytes(values: pa.LargeBinaryArray) -> bytes:
    """The lines' bytes back to back (each keeps its newline), straight from the Arrow buffers."""
    if len(values) == 0:
        return b""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    start, end = int(offsets[0]), int(offsets[-1])
    return values.buffers()[2].slice(start, end - start).to_pybytes()
