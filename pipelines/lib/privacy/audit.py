"""The erasure audit log: append-only Parquet under ``ops/erasure/``, one file per completed run.
It holds hashed ids only; the raw ids never leave the request file.

One row per action (a partition rewritten, a rollup rebuilt, a landing folder still holding raw
lines), plus one ``request`` row first: only that row carries the request's ``hashed_ids`` (the
users' HMACs under every key), the other rows leave it null. The list is written once per request,
however many partitions the erasure rewrote: 200,000 ids make an audit of about 7 MB where a copy
per action made 58 MB for nine partitions. Files written before this layout repeat the list on
every row; ``read_audit`` and ``registry.erased_users`` read both.

Ingest reads the log too (``registry.erased_users``): a day re-built from landing, which may
still hold an erased user's raw lines, drops their rows again instead of bringing them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.ingest.erased_users import AUDIT_DIR
from pipelines.lib.ingest.landing import READS_DAYS_AFTER, landing_dates
from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.lake.storage import Lake
from pipelines.lib.privacy.erasure import Erasure
from pipelines.lib.privacy.rebuild import Rebuilt

REQUEST, REWRITTEN, REBUILT, NOT_RECOMPUTABLE, LANDING, NOTHING_FOUND = (
    "request",
    "rewritten",
    "rollup_rebuilt",
    "rollup_not_recomputable",
    "landing_retained",
    "nothing_found",
)

AUDIT_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("completed_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        ("hashed_ids", pa.list_(pa.string())),
        ("action", pa.string()),
        ("table_name", pa.string()),
        ("partition", pa.string()),
        ("rows_removed", pa.int64()),
        ("detail", pa.string()),
    ]
)


def landing_notes(
    lake: Lake, days: list[date], landing_days_after_materialised: int
) -> list[tuple[str, str]]:
    """The landing dates that may still hold the users' raw lines (those the erased days read),
    and when retention is expected to delete them (if the daily runs keep going)."""
    notes = []
    for dt in sorted({dt for day in days for dt in landing_dates(day)}):
        if not lake.list_files(landing_dir(dt)):
            continue
        # dt's last reader, dt+1, is built at 02:00 on dt+2; retention waits the window after it.
        expires = dt + timedelta(days=READS_DAYS_AFTER + landing_days_after_materialised)
        notes.append(
            (landing_dir(dt), f"raw lines may remain until retention deletes them, about {expires}")
        )
    return notes


def write_audit(
    lake: Lake,
    erasure: Erasure,
    rebuilt: Rebuilt,
    landing: list[tuple[str, str]],
    completed_at: datetime,
    run_id: str,
) -> str:
    request = erasure.request
    rows: list[tuple[str, str | None, str | None, int | None, str | None]] = [
        (
            REQUEST,
            None,
            None,
            None,
            f"{len(request.user_ids)} user id(s), {len(erasure.hashes)} hash(es) under every key",
        )
    ]
    rows += [(REWRITTEN, r.table, r.partition, r.rows_removed, None) for r in erasure.rewrites]
    rows += [(REBUILT, f"rollups/{name}", str(start), None, None) for name, start in rebuilt.built]
    rows += [
        (NOT_RECOMPUTABLE, f"rollups/{name}", str(start), None, why)
        for name, start, why in rebuilt.not_recomputable
    ]
    rows += [(LANDING, "landing", folder, None, note) for folder, note in landing]
    if not erasure.rewrites:
        rows.append((NOTHING_FOUND, None, None, 0, "no stored row holds these users' hashes"))
    n = len(rows)
    table = pa.table(
        {
            "request_id": [request.request_id] * n,
            "received_at": [request.received_at] * n,
            "completed_at": [completed_at] * n,
            "run_id": [run_id] * n,
            # Once, on the request row: a copy per action made the audit grow with partitions.
            "hashed_ids": [erasure.hashes] + [None] * (n - 1),
            "action": [r[0] for r in rows],
            "table_name": [r[1] for r in rows],
            "partition": [r[2] for r in rows],
            "rows_removed": [r[3] for r in rows],
            "detail": [r[4] for r in rows],
        },
        schema=AUDIT_SCHEMA,
    )
    # Append-only: a new file per run, named by its completion time, never rewritten.
    rel = (
        f"{AUDIT_DIR}/request_id={request.request_id}/"
        f"{completed_at:%Y%m%dT%H%M%S%fZ}-{run_id[:8]}.parquet"
    )
    with lake.staged_file(rel) as local:
        pq.write_table(table, local, compression="zstd")
    return rel


@dataclass(frozen=True)
class AuditAction:
    action: str
    table_name: str | None
    partition: str | None
    rows_removed: int | None
    detail: str | None


@dataclass(frozen=True)
class AuditEntry:
    """One audit file: the request, its hashes (once), and what the run did."""

    request_id: str
    received_at: datetime
    completed_at: datetime
    run_id: str
    hashed_ids: list[str]
    actions: list[AuditAction]


def read_audit(lake: Lake, rel: str) -> AuditEntry:
    """An audit file, of either layout (the hashes on the request row, or on every row)."""
    with lake.open(rel) as handle:
        rows = pq.read_table(handle, schema=AUDIT_SCHEMA).to_pylist()
    if not rows:
        raise ValueError(f"{lake.url(rel)} holds no audit row")
    lists = [r["hashed_ids"] for r in rows if r["action"] == REQUEST] or [
        r["hashed_ids"] for r in rows if r["hashed_ids"] is not None
    ]
    first = rows[0]
    return AuditEntry(
        request_id=first["request_id"],
        received_at=first["received_at"],
        completed_at=first["completed_at"],
        run_id=first["run_id"],
        hashed_ids=lists[0] if lists else [],
        actions=[
            AuditAction(
                r["action"], r["table_name"], r["partition"], r["rows_removed"], r["detail"]
            )
            for r in rows
            if r["action"] != REQUEST
        ],
    )
