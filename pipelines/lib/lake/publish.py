"""A day's tables publish as one unit: the five event tables, the quarantine and the ledger of an
event date change together, locally and on S3; a crash or a full disk part-way leaves the previous
version, or a journal that rolls the new one forward.

Why: each table folder is swapped in atomically on its own (``Lake.staged_dir``), but seven swaps
in a row are not one. A full disk or a ``kill -9`` between two of them left a day half new, half
old, and its ledger disagreed with its tables (issue 20).

The protocol, a redo journal rolled forward:

1. Stage. Every table of the day is written whole under
   ``_publish/staging/event_date=D.<publish id>/<table>/``, each Parquet file carrying the publish
   id in its footer (``PUBLISH_ID_KEY``); locally the files, their folders and the parents are
   fsynced, on S3 each table is one object. Readers see nothing new yet: a failure here, a full
   disk included, publishes nothing, and what was staged is removed (after a crash, by the next
   publish of the same day).
2. Journal. ``_publish/event_date=D.json`` is written atomically (``Lake.staged_file``): the
   publish id and every (staged, final) folder pair. This is the commit point. It is written only
   once every staged file is complete and durable, so a journal never names a half-written file.
3. Apply. Each table is swapped in: locally one ``renameat2(RENAME_EXCHANGE)`` of its folder (the
   previous contents land in the staging folder), on S3 a server-side copy of the staged object
   over the partition's one object, then the deletion of the folder's other keys.
4. Finish. The journal is removed, then the staging folder.

``recover(lake, day)`` rolls an interrupted publish forward: if the day has a journal, it applies
every table not applied yet, then finishes. Re-applying must never bring the previous version back:

* locally an exchange leaves the previous contents at the staged path, so the staged folder still
  holds files with the journal's publish id only if that table was not swapped yet; a table
  rewritten since its swap (compaction, erasure) is left alone;
* on S3 a copy leaves the staged object as it was, so copying again is always safe; a table whose
  object already carries the journal's id is skipped.

One applier at a time: two could exchange a folder twice and put the old version back. The
publisher (ingest) runs under the day's ingest lease (``lib/lake/lease.py``, taken by the Dagster
asset)
and calls ``recover`` under it; readers call ``recover_pending``, which takes that lease before
applying anything, so it waits for a live publisher instead of racing it. Never delete
``_publish/staging/`` by hand while a journal exists: the journal needs it to roll forward.

A publisher that stalls past its lease's expiry (a paused VM, SIGSTOP) may resume after another
writer took the day over, removed its staging as garbage and published: right before the journal
(the commit point) it checks that every staged table is still there with its publish id, then that
it still holds the lease (``still_held``: ``Lease.verify`` of the lease it was given, or of the
day's ingest lease this process holds, ``lease.held``); either failing, it commits nothing and
removes only its own staging, so the other writer's version stays whole. Each swap, and each swap
of ``recover``, is preceded by the same lease check.

``clear_leftovers`` removes, under each day's lease, what killed publishes left in
``_publish/staging/`` (the erasure calls it: those copies hold rows too).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.lake import storage
from pipelines.lib.lake.lease import DEFAULT_WAIT_S, Lease, Owner, held
from pipelines.lib.lake.storage import Lake

PUBLISH_DIR = "_publish"  # under the lake root: journals, and the staging of day publishes
STAGING_AREA = f"{PUBLISH_DIR}/staging"
PUBLISH_ID_KEY = "telemetry_lake.publish_id"  # Parquet key-value metadata of every staged file
# The lease a publisher of day D holds (the ingest asset takes it); recovery takes it too.
INGEST_LEASE_GROUP = "ingest"
JOURNAL_FORMAT = 1

# The steps at which the fault hook is called, "<step>" or "<step>:<table>" (tests raise there or
# end the process). WRITING: a table's file is open and not closed (mid-write).
WRITING, STAGED, JOURNAL, APPLIED, JOURNAL_REMOVED = (
    "writing",
    "staged",
    "journal",
    "applied",
    "journal_removed",
)
STEPS = (WRITING, STAGED, JOURNAL, APPLIED, JOURNAL_REMOVED)
Fault = Callable[[str], None]
# Raises (``LeaseLostError``) unless the caller still holds the day's ingest lease.
StillHeld = Callable[[], None]
_JOURNAL_NAME = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})\.json")


class DayPublishError(OSError):
    """A day's publish (or its recovery) failed; the message names the table and file and says
    which tables are the new version and which the previous one. Keeps the cause's errno (28 for a
    full disk), so code that looks at ``errno`` still can."""


def journal_path(day: date) -> str:
    return f"{PUBLISH_DIR}/event_date={day.isoformat()}.json"


def _staging_prefix(day: date) -> str:
    return f"event_date={day.isoformat()}."


@dataclass(frozen=True)
class Pair:
    table: str  # click, ..., quarantine, ledger
    staged: str  # folders, relative to the lake root
    final: str


@dataclass(frozen=True)
class Journal:
    day: date
    publish_id: str
    staging: str
    pairs: tuple[Pair, ...]

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": JOURNAL_FORMAT,
                "event_date": self.day.isoformat(),
                "publish_id": self.publish_id,
                "staging": self.staging,
                "written_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tables": [p.__dict__ for p in self.pairs],
            },
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Journal:
        try:
            doc = json.loads(data)
            if doc["format"] != JOURNAL_FORMAT:
                raise ValueError(f"format {doc['format']}, expected {JOURNAL_FORMAT}")
            pairs = tuple(Pair(t["table"], t["staged"], t["final"]) for t in doc["tables"])
            return cls(
                date.fromisoformat(doc["event_date"]), doc["publish_id"], doc["staging"], pairs
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Written atomically, so this is not a torn write: someone edited it, or a newer format.
            raise ValueError(f"publish journal {where} cannot be read ({exc})") from exc


@dataclass
class Recovery:
    """What ``recover`` did for one day."""

    day: date
    publish_id: str
    rolled_forward: list[str] = field(default_factory=list)  # applied by this recovery
    already_applied: list[str] = field(default_factory=list)  # applied before the interruption

    def describe(self) -> str:
        return (
            f"event_date={self.day}: an interrupted publish ({self.publish_id}) was rolled "
            f"forward: applied now {', '.join(self.rolled_forward) or 'none'}; already applied "
            f"{', '.join(self.already_applied) or 'none'}; the day is now the new version whole"
        )


def _no_fault(_step: str) -> None:
    pass


def _not_checked() -> None:
    pass


def _lease_check(lake: Lake, day: date, still_held: StillHeld | None) -> StillHeld:
    """``still_held``, or else the check of the day's ingest lease this process holds (none when
    it holds none: a caller that knows nobody else publishes the day)."""
    if still_held is not None:
        return still_held
    lease = held(lake, INGEST_LEASE_GROUP, day.isoformat())
    return lease.verify if lease is not None else _not_checked


def read_journal(lake: Lake, day: date) -> Journal | None:
    rel = journal_path(day)
    try:
        with lake.open(rel) as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return Journal.from_bytes(data, lake.url(rel))


def pending_days(lake: Lake) -> list[date]:
    """The days with a publish journal: published halfway, until ``recover`` runs (one listing)."""
    names = (f.path.rsplit("/", 1)[-1] for f in lake.list_files(PUBLISH_DIR))
    return sorted(date.fromisoformat(m[1]) for n in names if (m := _JOURNAL_NAME.fullmatch(n)))


def _folder_publish_id(lake: Lake, rel_dir: str) -> str | None:
    """The publish id in the footer of the folder's first Parquet file (None: no file or no id)."""
    files = lake.parquet_files(rel_dir)
    if not files:
        return None
    with lake.open(files[0].path) as handle:
        metadata = pq.read_metadata(handle).metadata or {}
    value = metadata.get(PUBLISH_ID_KEY.encode())
    return value.decode() if value is not None else None


def _needs_apply(lake: Lake, pair: Pair, publish_id: str) -> bool:
    if lake.is_local:
        # An exchange leaves the previous contents at the staged path: only a folder not swapped
        # yet still holds this publish's files there.
        return _folder_publish_id(lake, pair.staged) == publish_id
    if _folder_publish_id(lake, pair.final) == publish_id:
        return False
    if not lake.parquet_files(pair.staged):
        raise FileNotFoundError(
            f"{lake.url(pair.staged)}: the staged {pair.table} table the journal names is gone, "
            f"and {lake.url(pair.final)} is not its version: it cannot be rolled forward"
        )
    return True


def _apply(lake: Lake, pair: Pair) -> None:
    if lake.is_local:
        final = lake.path(pair.final)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        storage.exchange_folders(lake.path(pair.staged), final)
        storage.fsync_dir(os.path.dirname(final))
        return
    names = [f.path.rsplit("/", 1)[-1] for f in lake.list_files(pair.staged)]
    for name in names:  # server-side copies: the staged object stays, so this can be redone
        lake.fs.copy(lake.path(f"{pair.staged}/{name}"), lake.path(f"{pair.final}/{name}"))
    stale = [f.path for f in lake.list_files(pair.final) if f.path.rsplit("/", 1)[-1] not in names]
    if stale:
        lake.fs.rm([lake.path(p) for p in stale])


def _remove_tree(lake: Lake, rel: str) -> None:
    if lake.is_local:
        shutil.rmtree(lake.path(rel), ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(lake.path(rel), recursive=True)


def _finish(lake: Lake, journal: Journal, fault: Fault) -> None:
    """Remove the journal, then the staging: the other order could leave a journal whose staged
    tables are gone."""
    rel = journal_path(journal.day)
    with contextlib.suppress(FileNotFoundError):
        lake.fs.rm(lake.path(rel))
    if lake.is_local:
        storage.fsync_dir(lake.path(PUBLISH_DIR))
    fault(JOURNAL_REMOVED)
    _remove_tree(lake, journal.staging)


def _apply_all(
    lake: Lake,
    journal: Journal,
    fault: Fault,
    recovery: Recovery,
    still_held: StillHeld = _not_checked,
) -> None:
    for n, pair in enumerate(journal.pairs):
        try:
            if not _needs_apply(lake, pair, journal.publish_id):
                recovery.already_applied.append(pair.table)
                continue
            # A writer that lost the lease stops here: the new holder rolls the journal forward.
            still_held()
            _apply(lake, pair)
        except OSError as exc:
            done = recovery.already_applied + recovery.rolled_forward
            rest = [p.table for p in journal.pairs[n:]]
            raise DayPublishError(
                exc.errno or errno.EIO,
                f"publishing event_date={journal.day}: {exc.strerror or exc} while applying table "
                f"{pair.table} ({lake.url(pair.staged)} -> {lake.url(pair.final)}): new version "
                f"published: {', '.join(done) or 'none'}; still the previous version: "
                f"{', '.join(rest)}. The journal {lake.url(journal_path(journal.day))} stays: the "
                "next run of the day, a contracts or rollups run, or the day_publish_recovery "
                "sensor rolls the rest forward once the cause is fixed",
            ) from exc
        recovery.rolled_forward.append(pair.table)
        fault(f"{APPLIED}:{pair.table}")


def recover(
    lake: Lake,
    day: date,
    *,
    log: Callable[[str], object] = lambda _msg: None,
    fault: Fault | None = None,
    still_held: StillHeld | None = None,
) -> Recovery | None:
    """Roll an interrupted publish of ``day`` forward (None when there was none). The caller holds
    the day's ingest lease or knows nobody publishes the day meanwhile (``recover_pending`` takes
    the lease); each swap is preceded by ``still_held`` (default: the check of the day's ingest
    lease this process holds). Idempotent: a recovery interrupted in turn is completed by the
    next one."""
    journal = read_journal(lake, day)
    if journal is None:
        return None
    recovery = Recovery(day, journal.publish_id)
    _apply_all(lake, journal, fault or _no_fault, recovery, _lease_check(lake, day, still_held))
    _finish(lake, journal, fault or _no_fault)
    log(recovery.describe())
    return recovery


def recover_pending(
    lake: Lake,
    days: Iterable[date] | None = None,
    *,
    log: Callable[[str], object] = lambda _msg: None,
    wait_s: float = DEFAULT_WAIT_S,
    owner: Owner | None = None,
) -> list[Recovery]:
    """``recover`` each day with a journal (of ``days``, or every day), under the day's ingest
    lease: a live publisher is waited for (up to ``wait_s``), a dead one's publish is completed.
    Costs one listing of ``_publish/`` when nothing is pending."""
    # Under the lease the publisher may have finished: then there is nothing left to do (None).
    return _under_day_leases(
        lake,
        pending_days(lake),
        days,
        lambda day: recover(lake, day, log=log),
        log=log,
        wait_s=wait_s,
        owner=owner,
    )


T = TypeVar("T")


def _under_day_leases(
    lake: Lake,
    candidates: Iterable[date],
    days: Iterable[date] | None,
    act: Callable[[date], T | None],
    *,
    log: Callable[[str], object],
    wait_s: float,
    owner: Owner | None,
) -> list[T]:
    """``act`` on each day of ``candidates`` (those of ``days``, or all) under the day's ingest
    lease, a live publisher waited for up to ``wait_s``; returns what it gave, None left out."""
    wanted = None if days is None else set(days)
    done = []
    for day in candidates:
        if wanted is not None and day not in wanted:
            continue
        who = owner or Owner.current()
        with Lease(lake, INGEST_LEASE_GROUP, day.isoformat(), who, wait_s=wait_s, log=log):
            if (result := act(day)) is not None:
                done.append(result)
    return done


def _remove_day_staging(lake: Lake, day: date) -> list[str]:
    """Remove every staging folder of ``day`` (the caller holds the day's ingest lease and has
    rolled any journal forward: they are all garbage then); returns their names."""
    names = [n for n in lake.list_dirs(STAGING_AREA) if n.startswith(_staging_prefix(day))]
    for name in names:
        _remove_tree(lake, f"{STAGING_AREA}/{name}")
    return names


def staging_days(lake: Lake) -> list[date]:
    """The days with a folder under ``_publish/staging/`` (one listing): a live publish, or what
    a killed one left."""
    days = set()
    for name in lake.list_dirs(STAGING_AREA):
        m = re.fullmatch(r"event_date=(\d{4}-\d{2}-\d{2})\..+", name)
        if m:
            with contextlib.suppress(ValueError):
                days.add(date.fromisoformat(m[1]))
    return sorted(days)


def clear_leftovers(
    lake: Lake,
    days: Iterable[date] | None = None,
    *,
    log: Callable[[str], object] = lambda _msg: None,
    wait_s: float = DEFAULT_WAIT_S,
    owner: Owner | None = None,
) -> list[date]:
    """For each day (of ``days``, or every day) with a journal or a staging folder: under the
    day's ingest lease (a live publisher is waited for, up to ``wait_s``), roll a pending journal
    forward, then remove the day's staging folders, which are garbage once nobody publishes the
    day: the new version of a publish killed before its journal, or the previous version left by
    one killed after removing it. Returns the days whose staging was removed."""

    def clear(day: date) -> date | None:
        recover(lake, day, log=log)
        removed = _remove_day_staging(lake, day)
        if not removed:
            return None
        log(
            f"event_date={day}: removed the staging left by a publish cut short: "
            f"{', '.join(f'{STAGING_AREA}/{n}' for n in removed)}"
        )
        return day

    return _under_day_leases(
        lake,
        sorted(set(pending_days(lake)) | set(staging_days(lake))),
        days,
        clear,
        log=log,
        wait_s=wait_s,
        owner=owner,
    )


class DayPublish:
    """Stage every table of a day, then publish them as one unit (see the module docstring)::

        with DayPublish(lake, day, ["click", ..., "quarantine", "ledger"]) as publish:
            publish.stage("click", events_file("click", day), reader)
            ...

    Leaving the block normally commits (journal, swaps, clean-up); an exception inside it publishes
    nothing and removes what was staged. The caller holds the day's ingest lease: ``still_held``
    raises once it does not (default: the check of the day's ingest lease this process holds,
    ``lease.held``); it is called right before the journal and before each swap."""

    def __init__(
        self,
        lake: Lake,
        day: date,
        tables: list[str],
        fault: Fault | None = None,
        log: Callable[[str], object] = lambda _msg: None,
        still_held: StillHeld | None = None,
    ):
        self.lake, self.day, self.tables = lake, day, list(tables)
        self.publish_id = uuid.uuid4().hex
        self.staging = f"{STAGING_AREA}/{_staging_prefix(day)}{self.publish_id}"
        self.pairs: dict[str, Pair] = {}
        self._fault = fault or _no_fault
        self._log = log
        self._committed = False
        self._still_held = _lease_check(lake, day, still_held)

    def __enter__(self) -> DayPublish:
        # No journal may stay behind a new publish.
        recover(self.lake, self.day, log=self._log, still_held=self._still_held)
        self._remove_garbage()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._commit()
        elif not self._committed:
            _remove_tree(self.lake, self.staging)

    def _remove_garbage(self) -> None:
        """Staging folders of this day left by a publish that died before its journal."""
        _remove_day_staging(self.lake, self.day)

    def _error(self, exc: OSError, doing: str, table: str | None, where: str) -> DayPublishError:
        staged = ", ".join(self.pairs) or "none"
        subject = f"table {table} ({where})" if table else where
        return DayPublishError(
            exc.errno or errno.EIO,
            f"publishing event_date={self.day}: {exc.strerror or exc} while {doing} {subject}: "
            f"nothing was published; every table of the day ({', '.join(self.tables)}) is still "
            f"the previous version; the tables staged so far ({staged}) were discarded",
        )

    def stage(
        self,
        table: str,
        rel: str,
        reader: pa.RecordBatchReader,
        *,
        expected_rows: int | None = None,
    ) -> tuple[int, int]:
        """Write ``reader`` as the one file of ``table`` (final path ``rel``) into the staging;
        returns (rows, bytes). A count other than ``expected_rows`` (what the ledger says) fails
        the publish: a day whose tables disagree with its ledger is never published."""
        if table not in self.tables or table in self.pairs:
            raise ValueError(f"{table}: not one of {self.tables}, or staged twice")
        folder, name = rel.rsplit("/", 1)
        staged = f"{self.staging}/{table}"
        if self.lake.is_local:
            path = self.lake.path(f"{staged}/{name}")
            try:
                os.makedirs(os.path.dirname(path))
                rows = self._write(table, path, reader)
                storage.fsync_file(path)
                storage.fsync_dir(os.path.dirname(path))
                size = os.path.getsize(path)
            except OSError as exc:
                raise self._error(exc, "writing", table, path) from exc
        else:
            with self.lake.private_dir() as scratch:
                path = os.path.join(scratch, name)
                try:
                    rows = self._write(table, path, reader)
                    size = os.path.getsize(path)
                except OSError as exc:
                    raise self._error(exc, "writing", table, path) from exc
                target = self.lake.url(f"{staged}/{name}")
                try:
                    self.lake.fs.put_file(path, self.lake.path(f"{staged}/{name}"))
                except OSError as exc:
                    raise self._error(exc, "uploading", table, target) from exc
        if expected_rows is not None and rows != expected_rows:
            raise RuntimeError(f"{table}: wrote {rows} rows, ledger says {expected_rows}")
        self.pairs[table] = Pair(table, staged, folder)
        self._fault(f"{STAGED}:{table}")
        return rows, size

    def _write(self, table: str, path: str, reader: pa.RecordBatchReader) -> int:
        metadata = {**(reader.schema.metadata or {}), PUBLISH_ID_KEY.encode(): self.publish_id}
        rows = 0
        with pq.ParquetWriter(path, reader.schema.with_metadata(metadata), compression="zstd") as w:
            for batch in reader:
                w.write_batch(batch)
                rows += batch.num_rows
            self._fault(f"{WRITING}:{table}")  # the footer is not written yet
        return rows

    def _commit(self) -> None:
        missing = [t for t in self.tables if t not in self.pairs]
        if missing:
            _remove_tree(self.lake, self.staging)
            raise RuntimeError(
                f"publishing event_date={self.day}: {', '.join(missing)} not staged: a day is "
                "published whole or not at all; nothing was published"
            )
        journal = Journal(
            self.day, self.publish_id, self.staging, tuple(self.pairs[t] for t in self.tables)
        )
        try:
            self._check_staged(journal)
            # The commit point is next: a publisher that lost the day to another writer (it
            # stalled past its lease) must not write a journal over that writer's version.
            self._still_held()
        except BaseException:
            _remove_tree(self.lake, self.staging)
            raise
        self._write_journal(journal)
        self._committed = True
        self._fault(JOURNAL)
        _apply_all(
            self.lake, journal, self._fault, Recovery(self.day, self.publish_id), self._still_held
        )
        _finish(self.lake, journal, self._fault)

    def _check_staged(self, journal: Journal) -> None:
        """Every staged table is still there, with this publish's id: another writer of the day
        removes staging it takes for garbage, and a journal naming a vanished table would count
        it as applied."""
        vanished = [
            p.table
            for p in journal.pairs
            if _folder_publish_id(self.lake, p.staged) != self.publish_id
        ]
        if vanished:
            raise DayPublishError(
                errno.ENOENT,
                f"publishing event_date={self.day}: the staged table(s) {', '.join(vanished)} "
                f"are gone from {self.lake.url(self.staging)} (removed as garbage by another "
                "writer of the day: did this one lose its lease?): nothing was published; the "
                "day's tables are left as they are",
            )

    def _write_journal(self, journal: Journal) -> None:
        rel = journal_path(self.day)
        try:
            if self.lake.is_local:
                # The staged folders' own entries, up to the lake root, must be durable before
                # the journal that names them is.
                for folder in (self.staging, STAGING_AREA, PUBLISH_DIR, ""):
                    storage.fsync_dir(self.lake.path(folder))
            with self.lake.staged_file(rel) as local, open(local, "wb") as handle:
                handle.write(journal.to_bytes())
        except OSError as exc:
            # On S3 a PUT that timed out may still have landed: then the publish is committed.
            if self.lake.exists(rel):
                return
            _remove_tree(self.lake, self.staging)
            raise self._error(exc, "writing", None, f"the journal {self.lake.url(rel)}") from exc
