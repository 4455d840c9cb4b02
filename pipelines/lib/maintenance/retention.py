"""Retention: find the expired partitions of the lake, delete them (or trim error partitions to
their critical rows), and write a report of what was done. No Dagster here; "now" is always an
argument, never read from the clock, so a run is reproducible and the tests run at fixed instants.

The rules (``docs/contracts/pii_retention.md`` renders the windows from ``Windows``):

* A dated partition is deleted, whole, once its date is more than its window's days before today
  (UTC); a weekly or monthly rollup counts from the last day of its period.
* ``events/event_type=error``: whole-partition deletion cannot keep critical rows, so between
  ``errors_days`` and ``critical_errors_days`` each file is rewritten atomically with only its
  ``severity = 'critical'`` rows, once (the file is marked in its Parquet footer); after
  ``critical_errors_days`` the partition is deleted.
* ``landing/dt=X`` is read by the partitions ``reading_partitions(X)``. Its files are deleted only
  when every one of those partitions (from the first partition date on) has a ledger, and the
  newest of those ledgers was written ``landing_days_after_materialised`` days ago or more. A
  tombstone (``RETIRED_MARKER``) stays, so ingest refuses to rebuild a partition without them.
* Folders whose name is not a partition of a known table are never touched; ``ops/`` and
  ``reports/`` are not managed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lib.ingest import owner_index
from pipelines.lib.ingest.landing import READS_DAYS_AFTER, RETIRED_MARKER, reading_partitions
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.publish import recover_pending
from pipelines.lib.lake.storage import Lake, write_parquet
from pipelines.lib.rollups.run import GRAIN_KEYS, period

ERROR_TABLE = "events/error"
CRITICAL = "critical"
# Parquet key-value metadata of an error file already reduced to its critical rows: later runs
# read the footer only and skip the file.
TRIMMED_KEY = "telemetry_lake.retention"
TRIMMED_VALUE = "critical_only"
REPORT_DIR = "ops/retention"
DELETE, TRIM = "delete", "trim"
# The zones retention manages, each listed once per run (one paginated LIST on S3).
ZONES = ("events", "quarantine", "contracts", "quality", "ledger", "rollups", "landing")
_PARTITION_KEYS = {
    "events": {"event_date"},
    "quarantine": {"event_date"},
    "contracts": {"event_date"},
    "quality": {"event_date"},
    "ledger": {"event_date"},
    "rollups": set(GRAIN_KEYS.values()),
    "landing": {"dt"},
}
_GRAIN_OF_KEY = {key: grain for grain, key in GRAIN_KEYS.items()}
_FOLDER = re.compile(
    r"(?P<table>events/event_type=[^/]+|quarantine|contracts|quality|ledger|rollups/[^/]+|landing)"
    r"/(?P<key>[a-z_]+)=(?P<day>\d{4}-\d{2}-\d{2})"
)


@dataclass(frozen=True)
class Windows:
    """How long each table keeps a partition, in days: the one place the windows are defined."""

    events_days: int = 90
    errors_days: int = 30
    critical_errors_days: int = 90
    quarantine_days: int = 30
    contracts_days: int = 30
    # Small audit tables: kept as long as the rollups they explain.
    quality_days: int = 400
    ledger_days: int = 400
    rollups_days: int = 400
    landing_days_after_materialised: int = 7

    def validate(self) -> Windows:
        """Refuse a window shorter than the late-arrival window: a partition that late data may
        still rewrite, or a landing date it may still read, must not be deleted under it."""
        for setting in fields(self):
            days = getattr(self, setting.name)
            if not isinstance(days, int) or days < READS_DAYS_AFTER:
                raise ConfigError(
                    f"retention.{setting.name}={days!r} is shorter than the late-arrival window "
                    f"({READS_DAYS_AFTER} days, READS_DAYS_AFTER in "
                    "pipelines/lib/ingest/landing.py): "
                    f"set retention.{setting.name} to at least {READS_DAYS_AFTER}"
                )
        if self.critical_errors_days < self.errors_days:
            raise ConfigError(
                f"retention.critical_errors_days={self.critical_errors_days} is shorter than "
                f"retention.errors_days={self.errors_days}: set critical_errors_days to at least "
                "errors_days (critical errors are kept longer than the others)"
            )
        return self

    def days_of(self, table: str) -> int:
        """The window after which a partition of ``table`` is deleted whole."""
        if table == ERROR_TABLE:
            return self.critical_errors_days
        zone = table.split("/", 1)[0]
        if zone == "landing":
            return self.landing_days_after_materialised
        return getattr(self, f"{zone}_days")


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the lake root
    size_bytes: int
    modified: datetime  # UTC: the local mtime, or S3's LastModified


@dataclass(frozen=True)
class Partition:
    table: str  # events/click, quarantine, rollups/traffic_weekly, landing, ...
    folder: str  # relative to the lake root
    key: str  # event_date, week_start, month_start or dt
    day: date  # the folder's date: event date, period start or arrival date
    last_day: date  # the last day it holds data of (a rollup's period end)
    files: tuple[StoredFile, ...]


@dataclass(frozen=True)
class Action:
    """One partition acted on: deleted whole, or (error events) trimmed to its critical rows."""

    table: str
    partition: str  # the folder, relative to the lake root
    partition_date: date
    action: str  # DELETE or TRIM
    paths: tuple[str, ...]  # the files deleted or rewritten
    size_bytes: int  # of those files, before the action
    window_days: int
    reason: str
    # A deletion removes size_bytes; a trim's saving is known once the files are rewritten.
    bytes_removed: int | None = None


@dataclass(frozen=True)
class Plan:
    now: datetime
    actions: list[Action]
    # Landing dates no partition reads (before the first partition date): never ingested, so
    # never deleted automatically; the job warns about them.
    unread_landing: list[date]


@dataclass(frozen=True)
class RetentionResult:
    plan: Plan
    done: list[Action]  # in a dry run: the plan's actions, none applied
    dry_run: bool
    report_path: str  # relative to the lake root

    def by_table(self) -> dict[str, dict[str, int]]:
        """Per table: partitions deleted and trimmed, and the bytes removed (a dry run: the bytes
        its deletions would remove; trims are measured only when applied)."""
        summary: dict[str, dict[str, int]] = {}
        for action in self.done:
            row = summary.setdefault(action.table, {DELETE: 0, TRIM: 0, "bytes_removed": 0})
            row[action.action] += 1
            row["bytes_removed"] += action.bytes_removed or 0
        return dict(sorted(summary.items()))


def _modified(entry: dict[str, Any]) -> datetime:
    if isinstance(entry.get("LastModified"), datetime):
        return entry["LastModified"].astimezone(UTC)
    if "mtime" in entry:
        return datetime.fromtimestamp(float(entry["mtime"]), UTC)
    raise ValueError(f"the filesystem reports no modification time for {entry['name']}")


def list_tree(lake: Lake, rel_dir: str) -> list[StoredFile]:
    """Every file under ``rel_dir`` with its size and modification time, in one recursive listing
    (on S3 one paginated LIST, not one request per partition folder)."""
    lake.fs.invalidate_cache()  # fsspec caches listings; the lake changes under us
    prefix = lake.path("") + "/"
    try:
        entries = lake.fs.find(lake.path(rel_dir), detail=True)
    except FileNotFoundError:
        return []
    return sorted(
        (
            StoredFile(name.removeprefix(prefix), int(e.get("size") or 0), _modified(e))
            for name, e in entries.items()
            if e.get("type") == "file"
        ),
        key=lambda f: f.path,
    )


def _partition(folder: str, files: list[StoredFile]) -> Partition | None:
    match = _FOLDER.fullmatch(folder)
    if match is None:
        return None
    zone, _, name = match["table"].partition("/")
    key = match["key"]
    if key not in _PARTITION_KEYS[zone]:
        return None
    try:
        day = date.fromisoformat(match["day"])
        # period() refuses a weekly or monthly folder whose date does not start a period.
        last_day = period(_GRAIN_OF_KEY[key], day)[1] if key in _GRAIN_OF_KEY else day
    except ValueError:
        return None
    table = f"{zone}/{name.removeprefix('event_type=')}" if name else zone
    return Partition(table, folder, key, day, last_day, tuple(files))


def partitions(files: list[StoredFile]) -> list[Partition]:
    """Group files by partition folder; folders that are not a known table's partition (an odd
    name, an impossible date, a week not starting on Monday) are left out, hence never touched."""
    folders: dict[str, list[StoredFile]] = {}
    for f in files:
        folders.setdefault(f.path.rsplit("/", 1)[0], []).append(f)
    found = (_partition(folder, members) for folder, members in sorted(folders.items()))
    return [p for p in found if p is not None]


def _is_data(f: StoredFile) -> bool:
    # Hidden files are a writer's staging files (storage.staged_file), not published data.
    return f.path.endswith(".parquet") and not f.path.rsplit("/", 1)[-1].startswith(".")


def is_trimmed(lake: Lake, rel: str) -> bool:
    """Whether an error file was already reduced to its critical rows (reads the footer only)."""
    with lake.open(rel) as handle:
        metadata = pq.read_metadata(handle).metadata or {}
    return metadata.get(TRIMMED_KEY.encode()) == TRIMMED_VALUE.encode()


def _action(
    p: Partition, kind: str, files: Sequence[StoredFile], window_days: int, reason: str
) -> Action:
    """``kind`` (DELETE or TRIM) on ``files`` of ``p``: a deletion removes their size, a trim's
    saving is known once they are rewritten."""
    size_bytes = sum(f.size_bytes for f in files)
    return Action(
        p.table,
        p.folder,
        p.day,
        kind,
        tuple(f.path for f in files),
        size_bytes,
        window_days,
        reason,
        bytes_removed=size_bytes if kind == DELETE else None,
    )


def _dated_action(lake: Lake, p: Partition, windows: Windows, today: date) -> Action | None:
    window_days = windows.days_of(p.table)
    cutoff = today - timedelta(days=window_days)
    if p.last_day < cutoff:
        ends = "" if p.last_day == p.day else f" (its period ends {p.last_day})"
        return _action(
            p,
            DELETE,
            p.files,
            window_days,
            f"{p.key} {p.day}{ends} is more than {window_days} days before {today}",
        )
    if p.table != ERROR_TABLE or p.day >= today - timedelta(days=windows.errors_days):
        return None
    data = [f for f in p.files if _is_data(f)]
    if all(is_trimmed(lake, f.path) for f in data):
        return None
    return _action(
        p,
        TRIM,
        data,
        windows.errors_days,
        f"event_date {p.day} is more than {windows.errors_days} days before {today}: only "
        f"severity = '{CRITICAL}' rows are kept, until {windows.critical_errors_days} days",
    )


def _landing_action(
    p: Partition,
    ledgers: dict[date, datetime],
    windows: Windows,
    now: datetime,
    first_partition: date,
) -> Action | None:
    files = [f for f in p.files if not f.path.endswith(f"/{RETIRED_MARKER}")]
    readers = [d for d in reading_partitions(p.day) if d >= first_partition]
    if not files or not readers or any(d not in ledgers for d in readers):
        return None
    newest = max(ledgers[d] for d in readers)
    wait = timedelta(days=windows.landing_days_after_materialised)
    if now - newest < wait:
        return None
    return _action(
        p,
        DELETE,
        files,
        wait.days,
        f"every partition reading it ({readers[0]} .. {readers[-1]}) is materialised; the newest "
        f"ledger was written {newest:%Y-%m-%dT%H:%M:%SZ}, {wait.days} days or more before "
        f"{now:%Y-%m-%dT%H:%M:%SZ}",
    )


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} has no time zone: pass an aware datetime (UTC)")
    return now.astimezone(UTC)


def plan_retention(lake: Lake, windows: Windows, *, now: datetime, first_partition: date) -> Plan:
    """What retention would do at ``now``: every action, zone by zone, folders in name order."""
    windows.validate()
    now = _utc(now)
    today = now.date()
    found = [p for zone in ZONES for p in partitions(list_tree(lake, zone))]
    ledgers = {
        p.day: max(f.modified for f in data)
        for p in found
        if p.table == "ledger" and (data := [f for f in p.files if _is_data(f)])
    }
    actions: list[Action] = []
    unread: list[date] = []
    for p in found:
        if p.table == "landing":
            if not [d for d in reading_partitions(p.day) if d >= first_partition]:
                unread.append(p.day)
            action = _landing_action(p, ledgers, windows, now, first_partition)
        else:
            action = _dated_action(lake, p, windows, today)
        if action is not None:
            actions.append(action)
    return Plan(now, actions, unread)


def _trim(lake: Lake, action: Action) -> int:
    """Rewrite an error partition as one file of its critical rows, marked as trimmed, streamed
    batch by batch; ``write_parquet`` publishes it as the folder's only file, atomically. Returns
    the new size in bytes."""
    with contextlib.ExitStack() as stack:
        sources = [pq.ParquetFile(stack.enter_context(lake.open(rel))) for rel in action.paths]
        schema = sources[0].schema_arrow
        marked = schema.with_metadata({**(schema.metadata or {}), TRIMMED_KEY: TRIMMED_VALUE})
        reader = pa.RecordBatchReader.from_batches(
            marked, (batch for source in sources for batch in source.iter_batches())
        )
        _, size_bytes = write_parquet(
            lake,
            f"{action.partition}/part-00000.parquet",
            reader,
            lambda batch: batch.filter(pc.equal(batch["severity"], CRITICAL)),
        )
    return size_bytes


def tombstone_path(partition_folder: str) -> str:
    return f"{partition_folder}/{RETIRED_MARKER}"


def apply_action(lake: Lake, action: Action, *, run_id: str, now: datetime) -> Action:
    """Carry out one action; returns it with the bytes it removed. Safe to repeat (a second run
    finds the files gone or already trimmed)."""
    if action.action == TRIM:
        return replace(action, bytes_removed=action.size_bytes - _trim(lake, action))
    if action.table == "landing":
        # The tombstone first: a crash between the two steps then leaves a folder ingest refuses,
        # never a silently incomplete one.
        tombstone = {
            "retired_at": _utc(now).isoformat(),
            "run_id": run_id,
            "files": len(action.paths),
            "bytes": action.size_bytes,
            "file_names": [p.rsplit("/", 1)[-1] for p in action.paths],
            "reason": action.reason,
        }
        with (
            lake.staged_file(tombstone_path(action.partition)) as local,
            open(local, "w", encoding="utf-8") as handle,
        ):
            json.dump(tombstone, handle, indent=2)
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm([lake.path(p) for p in action.paths])
        # The owner index of the date's files goes with them (no partition reads them again).
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(lake.path(owner_index.index_dir(action.partition_date)), recursive=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            lake.fs.rm(lake.path(action.partition), recursive=True)
    return action


REPORT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("table", pa.string()),
        ("partition", pa.string()),
        ("partition_date", pa.date32()),
        ("action", pa.string()),
        ("files", pa.int64()),
        ("bytes", pa.int64()),
        ("bytes_removed", pa.int64()),
        ("dry_run", pa.bool_()),
        ("window_days", pa.int32()),
        ("reason", pa.string()),
    ]
)


def report_path(now: datetime, run_id: str) -> str:
    now = _utc(now)
    return f"{REPORT_DIR}/run_date={now.date().isoformat()}/{now:%Y%m%dT%H%M%SZ}-{run_id}.parquet"


def report_table(actions: list[Action], *, run_id: str, now: datetime, dry_run: bool) -> pa.Table:
    """One row per partition acted on (one list per column: per partition, not per event)."""
    count = len(actions)
    return pa.table(
        {
            "run_id": pa.repeat(pa.scalar(run_id), count),
            "as_of": pa.repeat(pa.scalar(_utc(now), REPORT_SCHEMA.field("as_of").type), count),
            "table": [a.table for a in actions],
            "partition": [a.partition for a in actions],
            "partition_date": [a.partition_date for a in actions],
            "action": [a.action for a in actions],
            "files": [len(a.paths) for a in actions],
            "bytes": [a.size_bytes for a in actions],
            "bytes_removed": [a.bytes_removed for a in actions],
            "dry_run": pa.repeat(pa.scalar(dry_run), count),
            "window_days": [a.window_days for a in actions],
            "reason": [a.reason for a in actions],
        },
        schema=REPORT_SCHEMA,
    )


def write_report(lake: Lake, rel: str, table: pa.Table) -> None:
    """Publish one run's report as a single file beside the day's earlier reports (a partition
    writer would replace the whole folder)."""
    with lake.staged_file(rel) as local:
        pq.write_table(table, local, compression="zstd")


def run_retention(
    lake: Lake,
    windows: Windows,
    *,
    now: datetime,
    first_partition: date,
    run_id: str,
    dry_run: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> RetentionResult:
    """Plan, apply (unless ``dry_run``) and report. The report is written even when an action
    fails, listing what was done before the failure, and the failure is then raised."""
    if not dry_run:  # a publish rolled forward later would bring back what is deleted now
        recover_pending(lake, log=log)
    plan = plan_retention(lake, windows, now=now, first_partition=first_partition)
    done: list[Action] = []
    path = report_path(now, run_id)
    try:
        for action in plan.actions:
            applied = action if dry_run else apply_action(lake, action, run_id=run_id, now=now)
            done.append(applied)
            log(
                f"{'would ' if dry_run else ''}{action.action} {action.partition}: "
                f"{len(action.paths)} files, {action.size_bytes} bytes ({action.reason})"
            )
    finally:
        write_report(lake, path, report_table(done, run_id=run_id, now=now, dry_run=dry_run))
    return RetentionResult(plan, done, dry_run, path)
