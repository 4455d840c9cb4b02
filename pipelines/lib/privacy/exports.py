"""The subject-access export: every row held for one user, across all event types and the
quarantine, as one JSON Lines file and a manifest, ready to hand to the user.

The raw id is hashed under every key and never written: the export holds the rows as stored
(identifiers hashed). It lives in ``exports/<export id>/`` until handed over; an erasure of the same
user deletes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake, sha256_hex
from pipelines.lib.schemas.registry import event_types

EXPORTS_DIR = "exports"
ROWS_FILE = "rows.jsonl"
MANIFEST_FILE = "manifest.json"
QUARANTINE = "quarantine"


@dataclass
class Export:
    export_id: str
    folder: str
    hashed_ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    first_event_ts: str | None = None
    last_event_ts: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def export_user(
    lake: Lake,
    user_id: str,
    secrets: list[bytes],
    now: datetime,
    memory_limit: str = "2GB",
    threads: int = 2,
) -> Export:
    hashes = sorted({pii.hmac_hex(s, user_id) for s in secrets})
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:12]
    export_id = f"{now:%Y%m%dT%H%M%SZ}-{digest}"
    export = Export(export_id, f"{EXPORTS_DIR}/{export_id}", hashes)
    stamps: list[str] = []
    with (
        lake_connection(lake, memory_limit, threads) as con,
        lake.staged_dir(export.folder) as staging,
    ):
        with open(os.path.join(staging, ROWS_FILE), "w", encoding="utf-8") as out:
            for event_type in event_types():
                urls = lake.glob_urls(f"events/event_type={event_type}/*/*.parquet")
                if not urls:
                    continue
                read_events(con, urls).create_view("user_events", replace=True)
                rows = con.sql(load_sql("privacy/export_rows.sql"), params={"hashes": hashes})
                lines = rows.fetchall()
                export.counts[event_type] = len(lines)
                for line, stamp in lines:
                    out.write(line + "\n")
                    stamps.append(stamp)
            urls = lake.glob_urls("quarantine/*/*.parquet")
            if urls:
                con.read_parquet(urls, hive_partitioning=True, union_by_name=True).create_view(
                    "quarantined", replace=True
                )
                lines = con.sql(
                    load_sql("privacy/export_quarantine.sql"), params={"hashes": hashes}
                ).fetchall()
                export.counts[QUARANTINE] = len(lines)
                for (line,) in lines:
                    out.write(line + "\n")
        if stamps:
            export.first_event_ts, export.last_event_ts = min(stamps), max(stamps)
        rows_path = os.path.join(staging, ROWS_FILE)
        with open(rows_path, "rb") as handle:
            rows_sha256 = sha256_hex(handle)
        manifest = {
            "export_id": export.export_id,
            "generated_at": now.isoformat(),
            "hashed_ids": hashes,
            "rows": export.rows,
            "rows_by_type": export.counts,
            "first_event_ts": export.first_event_ts,
            "last_event_ts": export.last_event_ts,
            "files": {ROWS_FILE: {"sha256": rows_sha256, "bytes": os.path.getsize(rows_path)}},
            "note": "Identifiers are stored keyed-hashed; each line is one stored row, with "
            "its table in `table`.",
        }
        with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
    return export


def exports_holding(lake: Lake, hashes: list[str]) -> list[str]:
    """Export folders made for any of these hashes (an erasure deletes them too)."""
    wanted = set(hashes)
    holding = []
    for name in lake.list_dirs(EXPORTS_DIR):
        rel = f"{EXPORTS_DIR}/{name}/{MANIFEST_FILE}"
        if not lake.exists(rel):
            continue
        with lake.open(rel) as handle:
            manifest = json.load(handle)
        if wanted & set(manifest.get("hashed_ids", [])):
            holding.append(f"{EXPORTS_DIR}/{name}")
    return holding
