"""Refuse to re-publish a day without landing files it was built from (no Dagster here).

Re-ingesting a day replaces its events, quarantine and ledger with what landing holds now. When
landing files the day's ledger lists have gone some other way than retention (moved, deleted by
hand, a mount or a prefix missing), that rebuild would drop every row read from them, and the
ledger check would still pass: the new ledger no longer lists the files (989 stored events once
became empty partitions that way, 0 = 0). So before anything is read or written, ingest compares
the day's ledger with the landing listing and refuses, naming the missing files
(``refuse_to_wipe``).

Never refused:

* files of a retired landing folder (retention's ``_RETIRED.json`` tombstone): retention deletes
  them on purpose, and ``landing.refuse_retired`` already keeps the day's stored events final;
* files of the landing dates an operator accepts as lost for one run
  (``IngestSettings.accept_missing_landing``, fed by the ``duckdb`` resource's field of the same
  name): the run logs each one and publishes without them;
* a file still in its folder that the landing listing leaves out (a dot-named upload).

The same refusal covers a listed file that is no longer read (a landing folder moved away and
linked back from outside ``landing/``) or is smaller than when it was read (``refuse_to_wipe``),
and, once the files are read, one that holds fewer lines than its ledger recorded
(``refuse_fewer_lines``): a file rewritten in place with as many lines or more is not detected
(landing files are written once; a content hash in the ledger would close that).

A day never published (no ledger) has nothing to wipe, and new landing files are never a reason
to refuse: only files the ledger lists are compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from datetime import date
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.ingest.landing import RETIRED_MARKER, LandingFile, rewrite_record
from pipelines.lib.lake.paths import landing_dir, ledger_dir
from pipelines.lib.lake.storage import Lake

# How many missing files a message names (the count is always given).
SAMPLE_SIZE = 10
# Where the override is set, for the message (a per-run resource setting in the launchpad).
OVERRIDE = "resources.duckdb.config.accept_missing_landing"


class MissingLandingFilesError(RuntimeError):
    """Landing files a published day was built from are gone and not retired: re-publishing it
    would drop their rows, so nothing was published. ``missing`` maps each file (as the ledger
    records it) to its landing date."""

    def __init__(self, day: date, missing: dict[str, date]):
        self.day = day
        self.missing = missing
        super().__init__(_message(day, missing))


class _Read(NamedTuple):
    """What the published ledger recorded of one landing file when it was read."""

    landing_dt: date
    file_bytes: int
    file_lines: int


def _ledger_rows(lake: Lake, day: date) -> dict[str, _Read] | None:
    """What the published ledger of ``day`` recorded of each landing file it lists; None when
    the day was never published. The one reader of the ledger for every test here."""
    files = lake.parquet_files(ledger_dir(day))
    if not files:
        return None
    listed: dict[str, _Read] = {}
    for f in files:  # compaction may have split the ledger into several files
        table = pq.read_table(lake.path(f.path), filesystem=lake.fs)
        zeros = [0] * table.num_rows  # (a ledger older than a column lacks it)
        sizes, lines = (
            table[c].to_pylist() if c in table.column_names else zeros
            for c in ("file_bytes", "file_lines")
        )
        for path, dt, size, n in zip(
            table["landing_file"].to_pylist(), _dates(table), sizes, lines, strict=True
        ):
            listed[path] = _Read(dt, size or 0, n or 0)
    return listed


def refuse_fewer_lines(
    lake: Lake,
    day: date,
    lines_now: dict[str, tuple[date, int]],
    accepted: Collection[date] = (),
    log: Callable[[str], None] = lambda _msg: None,
) -> None:
    """After the files are read, before anything is published: raise
    ``MissingLandingFilesError`` when a file ``day`` was published from now holds fewer lines
    than its ledger recorded (rewritten in place, cut short); ``lines_now``: path -> (landing
    date, lines read now). A file rewritten with as many lines or more is not detected."""
    before = {path: read.file_lines for path, read in (_ledger_rows(lake, day) or {}).items()}
    fewer = {
        path: dt
        for path, (dt, n) in lines_now.items()
        if before.get(path, 0) > n
        and dt not in accepted
        # Shrunk by an erasure's rewrite (it left a record): the lines it removed are erased.
        and _rewritten(lake, path).get("lines_after") != n
    }
    for path in fewer:
        log(
            f"{day}: landing file {path} holds {lines_now[path][1]} lines, {before[path]} when read"
        )
    if fewer:
        raise MissingLandingFilesError(day, fewer)


def shrunk_landing_files(
    lake: Lake, files: list[LandingFile], rows: dict[str, _Read]
) -> dict[str, str]:
    """The ``files`` a day was published from (``rows``: its ledger) that are now smaller than
    when they were read, or no longer read at all (a landing folder moved away and linked back
    from outside landing/): path -> why. Landing files are written once; re-reading what is left
    would drop rows."""
    changed: dict[str, str] = {}
    for f in files:
        if f.path not in rows:
            continue
        read_bytes = rows[f.path].file_bytes
        if f.unread is not None and read_bytes > 0:  # (never read: nothing to lose)
            changed[f.path] = f"now {f.unread}"
        elif f.size_bytes < read_bytes and _rewritten(lake, f.path).get("bytes_after") != (
            f.size_bytes
        ):
            changed[f.path] = f"shrank from {read_bytes} to {f.size_bytes} bytes"
    return changed


def _dates(table: pa.Table) -> list[date]:
    return table["landing_dt"].cast(pa.date32()).to_pylist()


def missing_landing_files(
    lake: Lake, day: date, present: Iterable[str], rows: dict[str, _Read] | None = None
) -> dict[str, date]:
    """The files the published ledger of ``day`` (``rows``, when the caller read it already)
    lists that are not in ``present`` (the landing listing, paths as the ledger records them)
    and whose landing folder was not retired."""
    rows = _ledger_rows(lake, day) if rows is None else rows
    if not rows:
        return {}
    found = set(present)
    gone = {path: read.landing_dt for path, read in rows.items() if path not in found}
    # Checked only when something is gone: a healthy re-run costs no request per landing date.
    dates = set(gone.values())
    retired = {dt for dt in dates if lake.exists(_marker(dt))}
    # A file still there that the listing leaves out (a dot-named upload, read by an older
    # version) was not lost: the listing's rules, not this guard, decide what is read.
    there = {f.path for dt in dates - retired for f in lake.list_files(landing_dir(dt))}
    return {
        path: dt for path, dt in sorted(gone.items()) if dt not in retired and path not in there
    }


def _rewritten(lake: Lake, path: str) -> dict[str, int]:
    """The record an erasure left when it rewrote landing file ``path`` without its users' lines
    (``privacy/landing_erasure.py``), or {}; read only for a file that looks cut short."""
    record = rewrite_record(path)
    if not lake.exists(record):
        return {}
    with lake.open(record) as handle:
        return json.load(handle)


def _marker(dt: date) -> str:
    return f"{landing_dir(dt)}/{RETIRED_MARKER}"


def refuse_to_wipe(
    lake: Lake,
    day: date,
    files: list[LandingFile],
    accepted: Collection[date] = (),
    log: Callable[[str], None] = lambda _msg: None,
) -> None:
    """Raise ``MissingLandingFilesError`` before ``day`` is re-published from ``files`` (the
    landing listing ingest is about to read) if a file its ledger lists is missing and not
    retired. Missing files of the ``accepted`` landing dates are logged and let go."""
    rows = _ledger_rows(lake, day) or {}
    missing = missing_landing_files(lake, day, (f.path for f in files), rows)
    # A file still listed but no longer read, or cut short, loses rows like a deleted one.
    for path, why in shrunk_landing_files(lake, files, rows).items():
        missing.setdefault(path, rows[path].landing_dt)
        log(f"{day}: landing file {path} {why} since the day was published")
    let_go = {path: dt for path, dt in missing.items() if dt in accepted}
    if let_go:
        log(
            f"{day}: publishing without {len(let_go)} landing file(s) its ledger lists, accepted "
            f"as lost (accept_missing_landing: {_iso(let_go.values())}); the rows read from them "
            f"leave the lake: {_sample(let_go)}"
        )
    refused = {path: dt for path, dt in missing.items() if dt not in accepted}
    if refused:
        raise MissingLandingFilesError(day, refused)


def _iso(dates: Iterable[date]) -> str:
    return ", ".join(d.isoformat() for d in sorted(set(dates)))


def _sample(missing: dict[str, date]) -> str:
    names = ", ".join(list(missing)[:SAMPLE_SIZE])
    more = len(missing) - SAMPLE_SIZE
    return names + (f" and {more} more" if more > 0 else "")


def _message(day: date, missing: dict[str, date]) -> str:
    dates = sorted(set(missing.values()))
    quoted = ", ".join(f'"{d.isoformat()}"' for d in dates)
    folders = ", ".join(f"{landing_dir(d)}/" for d in dates)
    return (
        f"{day} was not re-ingested: {len(missing)} landing file(s) its published ledger lists "
        "are missing, no longer read (a link leading out of landing/) or shorter than when they "
        f"were read, and their landing folders were not retired: {_sample(missing)}. "
        "Re-publishing the day now would drop every row read from them, so nothing was published "
        "and the stored day is unchanged. Restore the files to "
        f"{folders}; or, if they are gone for good, leave the day as it is (let retention retire "
        "the landing folder, which keeps the stored rows final); or, to rebuild the day without "
        f"them and lose their rows, run again with {OVERRIDE}: [{quoted}]."
    )
