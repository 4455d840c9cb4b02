"""The erasure audit log: append-only Parquet under ``ops/erasure/``, one file per completed run,
one row per action. It holds hashed ids only; the raw ids never leave the request file.

Ingest reads the log too (``registry.erased_users``): a day re-built from landing, which may
still hold an erased user's raw lines, drops their rows again instead of bringing them back.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.ingest import READS_DAYS_AFTER, landing_dates
from pipelines.lib.paths import landing_dir
from pipelines.lib.privacy.erasure import Erasure
from pipelines.lib.privacy.rebuild import Rebuilt
from pipelines.lib.privacy.registry import AUDIT_DIR
from pipelines.lib.storage import Lake

REWRITTEN, REBUILT, NOT_RECOMPUTABLE, LANDING, NOTHING_FOUND = (
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
    rows: list[tuple[str, str | None, str | None, int | None, str | None]] = [
        (REWRITTEN, r.table, r.partition, r.rows_removed, None) for r in erasure.rewrites
    ]
    rows += [(REBUILT, f"rollups/{name}", str(start), None, None) for name, start in rebuilt.built]
    rows += [
        (NOT_RECOMPUTABLE, f"rollups/{name}", str(start), None, why)
        for name, start, why in rebuilt.not_recomputable
    ]
    rows += [(LANDING, "landing", folder, None, note) for folder, note in landing]
    if not erasure.rewrites:
        rows.append((NOTHING_FOUND, None, None, 0, "no stored row holds these users' hashes"))
    request = erasure.request
    n = len(rows)
    table = pa.table(
        {
            "request_id": [request.request_id] * n,
            "received_at": [request.received_at] * n,
            "completed_at": [completed_at] * n,
            "run_id": [run_id] * n,
            "hashed_ids": [erasure.hashes] * n,
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
