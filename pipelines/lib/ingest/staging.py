"""Staging: the landing lines a partition owns, read in bounded batches into DuckDB (table
``staged``: ``sql/ingest/route_lines.sql`` then ``stage_routed.sql``), and the strict re-parse of
the lines DuckDB's lenient JSON reader may have accepted wrongly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.ingest import owner_index
from pipelines.lib.ingest.landing import (
    READS_DAYS_AFTER,
    READS_DAYS_BEFORE,
    LandingFile,
    ReadStats,
    iter_line_batches,
)
from pipelines.lib.lake.prefetch import prefetched
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import accepted_versions
from pipelines.lib.schemas.validator import LENIENT_JSON_HINTS, StrictJsonError, strict_loads

if TYPE_CHECKING:
    from datetime import date

    from pipelines.lib.ingest.partition import IngestSettings


def stage_lines(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    day: date,
    files: list[LandingFile],
    settings: IngestSettings,
    log: Callable[[str], None],
    only_lines: dict[str, pa.Array] | None = None,
) -> list[ReadStats]:
    """Stage the lines of ``files`` that ``day`` owns; with ``only_lines`` (landing path -> line
    numbers) only those lines of each file.

    Each line is parsed once (``route_lines.sql``) to find its owner. A file's owners are
    remembered (``owner_index.py``): a file indexed by an earlier partition skips, before any
    parse, the lines the index gives to other partitions; a file read whole for the first time
    gets its index."""
    versions = accepted_versions()
    window = {"days_late": READS_DAYS_AFTER, "days_early": READS_DAYS_BEFORE}
    route_params = {"max_line_bytes": settings.max_line_bytes, **window}
    params: dict[str, Any] = {
        "day": day,
        "max_line_bytes": settings.max_line_bytes,
        "known_types": list(versions),
        "known_versions": [f"{t}/{s.version}" for t, found in versions.items() for s in found],
        **{f"lenient_hint_{n}": hint for n, hint in enumerate(LENIENT_JSON_HINTS, start=1)},
        **window,
    }
    con.execute(load_sql("ingest/create_staged.sql"))
    con.execute(load_sql("ingest/create_line_owners.sql"))
    route, stage = load_sql("ingest/route_lines.sql"), load_sql("ingest/stage_routed.sql")
    record = load_sql("ingest/record_owners.sql")
    # A partial read (only_lines: replay) neither uses nor writes an index.
    identities = [
        owner_index.identity(lake, f) if only_lines is None and f.unread is None else None
        for f in files
    ]
    others = [
        owner_index.others_lines(lake, f, ident, settings.max_line_bytes, day)
        for f, ident in zip(files, identities, strict=True)
    ]
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

    def stage_batches(which: set[int] | None) -> None:
        batches = _line_batches(lake, files, all_stats, settings, only_lines, others, which)
        for file_id, batch in prefetched(batches):
            log_read(file_id)
            con.register("line_batch", batch)
            landing_dt = files[file_id].landing_dt
            con.execute(route, {**route_params, "landing_dt": landing_dt})
            con.execute(stage, {**params, "file_id": file_id, "landing_dt": landing_dt})
            if identities[file_id] is not None and others[file_id] is None:
                con.execute(record, {"file_id": file_id})
            con.unregister("line_batch")
        log_read(len(files))

    stage_batches(None)
    # A file read through its index that changed meanwhile may not be the file the index
    # describes: it is read again, whole, without one (and not indexed: it is being written).
    changed = {
        file_id
        for file_id, landing in enumerate(files)
        if others[file_id] is not None
        and owner_index.identity(lake, landing) != identities[file_id]
    }
    for file_id in changed:
        log(f"{files[file_id].path} changed while it was read: reading it again, whole")
        con.execute(load_sql("ingest/unstage_file.sql"), {"file_id": file_id})
        all_stats[file_id] = ReadStats()
        others[file_id] = identities[file_id] = None
    if changed:
        stage_batches(changed)
    _write_indexes(con, lake, files, all_stats, identities, others, settings.max_line_bytes)
    return all_stats


def _write_indexes(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    files: list[LandingFile],
    all_stats: list[ReadStats],
    identities: list[str | None],
    others: list[np.ndarray | None],
    max_line_bytes: int,
) -> None:
    """Index the files read whole, without error, for the first time, and unchanged since they
    were listed (the identity read again after the read)."""
    for file_id, landing in enumerate(files):
        stats, known = all_stats[file_id], identities[file_id]
        if known is None or others[file_id] is not None or stats.errors or stats.truncated:
            continue
        if owner_index.identity(lake, landing) != known:
            continue
        owners = con.sql(load_sql("ingest/file_owners.sql"), params={"file_id": file_id})
        owner_index.write(lake, landing, known, max_line_bytes, owners.to_arrow_table())


def _line_batches(
    lake: Lake,
    files: list[LandingFile],
    all_stats: list[ReadStats],
    settings: IngestSettings,
    only_lines: dict[str, pa.Array] | None,
    others: list[np.ndarray | None],
    which: set[int] | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """(file id, batch of lines) of every file, in order; ``all_stats`` fills as they are read.
    Blank lines are counted (``ReadStats.blank_lines``), never staged: a file of millions of them
    costs a count per batch, not a row each. The lines ``others`` gives to another partition are
    dropped here, before any parse. ``which``: only those files."""
    for file_id, landing in enumerate(files):
        if which is not None and file_id not in which:
            continue
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
            if (mask := others[file_id]) is not None:
                batch = batch.filter(owner_index.keep_mask(mask, batch["line_no"]))
            if batch.num_rows:
                yield file_id, batch


def text_batch_rows(settings: IngestSettings) -> int:
    """Rows per batch when Python reads whole line texts back from DuckDB: at most about 256 MiB
    of text at once, however many lines there are."""
    return max(64, (256 << 20) // max(settings.max_line_bytes, 1))


def strict_recheck(
    con: duckdb.DuckDBPyConnection, suspects: str, update: str, settings: IngestSettings
) -> None:
    """Re-parse some lines with the strict parser; mark those it rejects malformed_json. The
    lines are read back in bounded batches and the failures kept in DuckDB, so millions of
    suspects cost time, not memory."""
    con.execute(load_sql("ingest/create_strict_failures.sql"))
    # A second connection to the same database streams the suspects while the first inserts.
    reader = con.cursor()
    for batch in reader.sql(load_sql(suspects)).to_arrow_reader(text_batch_rows(settings)):
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
            con.execute(load_sql("ingest/add_strict_failures.sql"))
            con.unregister("strict_failures_batch")
    reader.close()
    con.execute(load_sql(update))
    con.execute("drop table strict_failures")
