"""What the landing sensor decides on each tick: which landing files are new since its cursor, and
which partitions must run because of them, each with a run key derived from the files it covers.

Partition D reads landing dt D-1 .. D+2, so a file arriving on dt changes the inputs of D = dt-2
.. dt+1. Every materialised one of those must re-run (its ledger must list the file, or the
per-file balance check fails); one that is not materialised runs only once it is due, since the
daily schedule builds it otherwise. A partition whose ledger already lists every file it covers
is up to date (the schedule's run read them), so a late file costs exactly the partitions that
have not seen it yet. A partition never built and earlier than the lake's first built day is
history, not a missed run: building it is a backfill someone launches on purpose (a first tick
over a landing zone with older files, such as the demo's, would otherwise build every such day).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from pipelines.lib.ingest.landing import (
    RETIRED_MARKER,
    landing_dates,
    landing_files,
    reading_partitions,
)
from pipelines.lib.lake.calendar import daily_run_due
from pipelines.lib.lake.paths import landing_dir, ledger_dir
from pipelines.lib.lake.storage import Lake

# landing dt -> {file path relative to the lake root: size in bytes}
Listing = dict[date, dict[str, int]]


@dataclass(frozen=True)
class PartitionRun:
    day: date
    run_key: str
    files_covered: int
    new_files: list[str]


@dataclass
class Decision:
    runs: list[PartitionRun] = field(default_factory=list)
    skipped: dict[date, str] = field(default_factory=dict)
    cursor: str = "{}"


def list_landing(lake: Lake) -> Listing:
    """Every landing file, by arrival date: the files ingest lists (``landing_files``: unreadable
    ones and symlinks included, names recorded as the ledger records them), so every reader's
    ledger can list each one. Folders that are not ``dt=YYYY-MM-DD`` are ignored."""
    listing: Listing = {}
    for name in lake.list_dirs("landing"):
        try:
            dt = date.fromisoformat(name.removeprefix("dt="))
        except ValueError:
            continue
        listing[dt] = {f.path: f.size_bytes for f in landing_files(lake, dt)}
    return listing


def run_key(day: date, covered: dict[str, int]) -> str:
    """The same partition over the same files (names and sizes) always gets the same key, so a
    repeated or restarted tick cannot launch the same work twice."""
    digest = hashlib.sha256(day.isoformat().encode())
    for path, size in sorted(covered.items()):
        digest.update(f"\n{path}\t{size}".encode())
    return f"landing:{day.isoformat()}:{digest.hexdigest()[:16]}"


def decide(
    lake: Lake,
    listing: Listing,
    cursor: str | None,
    now: datetime,
    first_date: date,
    busy: Callable[[date], bool],
) -> Decision:
    """The runs to request for the files that are new since ``cursor``. ``busy(day)`` says whether
    a run for that partition is queued or in progress: such a partition waits for a later tick
    (its files stay new), so two runs never write one partition at once."""
    seen = _load_cursor(cursor)
    new = {
        dt: [p for p, size in files.items() if seen.get(dt, {}).get(p) != size]
        for dt, files in listing.items()
    }
    new = {dt: paths for dt, paths in new.items() if paths}
    decision = Decision()
    waiting: set[date] = set()
    candidates = sorted({d for dt in new for d in reading_partitions(dt) if d >= first_date})
    first_built = first_built_day(lake)
    for day in candidates:
        window = landing_dates(day)
        covered = {p: s for dt in window for p, s in listing.get(dt, {}).items()}
        ledger = _ledger_files(lake, day)
        if ledger is None and first_built is not None and day < first_built:
            decision.skipped[day] = (
                f"never built and before the lake's first built day ({first_built}): a backfill "
                "to launch on purpose, not a missed run"
            )
            continue
        if ledger is None and not daily_run_due(day, now):
            decision.skipped[day] = "not due yet: the daily schedule builds it"
            continue
        if ledger is not None and covered.items() <= ledger.items():
            decision.skipped[day] = "up to date: its ledger lists every file it reads"
            continue
        retired = [dt for dt in window if lake.exists(f"{landing_dir(dt)}/{RETIRED_MARKER}")]
        if retired:
            decision.skipped[day] = (
                f"final: landing {', '.join(str(dt) for dt in retired)} was retired, so a "
                "re-run would lose lines"
            )
            continue
        if busy(day):
            decision.skipped[day] = "waiting: a run for this partition is queued or in progress"
            waiting.update(dt for dt in window if dt in new)
            continue
        decision.runs.append(
            PartitionRun(
                day,
                run_key(day, covered),
                len(covered),
                sorted(p for dt in window for p in new.get(dt, [])),
            )
        )
    kept = {dt: (seen.get(dt, {}) if dt in waiting else files) for dt, files in listing.items()}
    decision.cursor = _dump_cursor({dt: files for dt, files in kept.items() if files})
    return decision


def reads_every_file(lake: Lake, listing: Listing, day: date) -> bool:
    """Whether the partition's last ingest read every landing file of its window as ``listing``
    has it (same names, same sizes): the rule that makes a built partition up to date."""
    ledger = _ledger_files(lake, day)
    covered = {p: s for dt in landing_dates(day) for p, s in listing.get(dt, {}).items()}
    return ledger is not None and covered.items() <= ledger.items()


def built_days(lake: Lake) -> set[date]:
    """The partitions with a ledger folder: every ingest writes one."""
    days = set()
    for name in lake.list_dirs("ledger"):
        try:
            days.add(date.fromisoformat(name.removeprefix("event_date=")))
        except ValueError:
            continue
    return days


def first_built_day(lake: Lake) -> date | None:
    """The earliest partition with a ledger, None in an empty lake."""
    return min(built_days(lake), default=None)


def _ledger_files(lake: Lake, day: date) -> dict[str, int] | None:
    """The landing files (and their sizes) the partition's last ingest read; None if never."""
    rel = ledger_dir(day)
    if not lake.parquet_files(rel):
        return None
    table = lake.read_partition(rel)
    return dict(
        zip(table["landing_file"].to_pylist(), table["file_bytes"].to_pylist(), strict=True)
    )


def _load_cursor(cursor: str | None) -> Listing:
    if not cursor:
        return {}
    return {date.fromisoformat(dt): files for dt, files in json.loads(cursor).items()}


def _dump_cursor(listing: Listing) -> str:
    # Only dates still in landing/: retention keeps the cursor as small as the zone.
    return json.dumps(
        {dt.isoformat(): files for dt, files in sorted(listing.items())}, sort_keys=True
    )
