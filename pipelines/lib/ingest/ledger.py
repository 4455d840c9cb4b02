"""Prove that nothing was lost: the ledger balances, per landing file and partition, and across the
partitions that share a landing file; and say which landing files were not read whole (their
lines are unknown, so no balance can prove them). Reads only what ingest published."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lib.ingest.erased_users import ERASED
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.landing import UNREAD_REASONS, LandingFile, ReadStats, reading_partitions
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.lake.paths import events_dir, ledger_dir, quarantine_dir
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import event_types

SAMPLE_SIZE = 20


@dataclass
class LedgerAudit:
    day: date
    files: int = 0
    lines_taken: int = 0
    unbalanced: list[dict[str, Any]] = field(default_factory=list)
    output_mismatches: list[dict[str, Any]] = field(default_factory=list)
    files_complete: int = 0
    files_awaiting_partitions: list[str] = field(default_factory=list)
    file_total_mismatches: list[dict[str, Any]] = field(default_factory=list)
    # Landing files with a `file_errors` note: not read, not read whole, or not as their name says.
    file_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.unbalanced or self.output_mismatches or self.file_total_mismatches)

    def metadata(self) -> dict[str, Any]:
        return {
            "landing_files": self.files,
            "lines_taken": self.lines_taken,
            "unbalanced_files": len(self.unbalanced),
            "output_mismatches": len(self.output_mismatches),
            "files_with_all_partitions": self.files_complete,
            "files_awaiting_partitions": len(self.files_awaiting_partitions),
            "file_total_mismatches": len(self.file_total_mismatches),
            "sample_unbalanced": self.unbalanced[:SAMPLE_SIZE],
            "sample_file_total_mismatches": self.file_total_mismatches[:SAMPLE_SIZE],
            "sample_output_mismatches": self.output_mismatches[:SAMPLE_SIZE],
            "sample_awaiting_partitions": self.files_awaiting_partitions[:SAMPLE_SIZE],
            "sample_file_errors": self.file_errors[:SAMPLE_SIZE],
        }

    def file_errors_metadata(self) -> dict[str, Any]:
        """What the ``landing_files_read`` check shows."""
        return {
            "landing_files": self.files,
            "files_with_errors": len(self.file_errors),
            "files_not_read_whole": sum(1 for f in self.file_errors if not f["read_whole"]),
            "sample_file_errors": self.file_errors[:SAMPLE_SIZE],
        }


def file_errors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger rows with a ``file_errors`` note. ``read_whole`` is false when lines of the file
    may be missing: it was not read (a symlink out of landing/, not a file), could not be read
    (permission denied), or its gzip is corrupt or cut short."""
    return [
        {
            "landing_file": row["landing_file"],
            "file_errors": row["file_errors"],
            "file_lines": row["file_lines"],
            "read_whole": not row["file_truncated"]
            and not any(reason in row["file_errors"] for reason in UNREAD_REASONS),
        }
        for row in rows
        if row.get("file_errors")
    ]


def _read_ledger(lake: Lake, day: date) -> list[dict[str, Any]] | None:
    rel = ledger_dir(day)
    if not lake.parquet_files(rel):
        return None
    return lake.read_partition(rel).to_pylist()


def audit_ledger(lake: Lake, day: date) -> LedgerAudit:
    rows = _read_ledger(lake, day)
    if rows is None:
        raise FileNotFoundError(f"no ledger for {day}: materialise the ingest partition first")
    audit = LedgerAudit(day=day, files=len(rows), file_errors=file_errors(rows))
    types = event_types()
    totals = {t: 0 for t in types}
    quarantined = 0
    for row in rows:
        audit.lines_taken += row["lines_taken"]
        # An erasure moves lines from rows or quarantined to erased; blank lines are counted, not
        # stored (older ledgers lack either column).
        accounted = (
            row["rows_written"]
            + row["quarantined"]
            + row["duplicates"]
            + (row.get("erased") or 0)
            + (row.get("blank_lines") or 0)
        )
        by_type = sum(row[f"rows_{t}"] for t in types)
        by_reason = sum(row[f"quarantined_{r}"] for r in REASONS)
        if (row["lines_taken"], row["rows_written"], row["quarantined"]) != (
            accounted,
            by_type,
            by_reason,
        ):
            audit.unbalanced.append(
                {
                    "landing_file": row["landing_file"],
                    "lines_taken": row["lines_taken"],
                    "rows_written": row["rows_written"],
                    "quarantined": row["quarantined"],
                    "duplicates": row["duplicates"],
                }
            )
        for t in types:
            totals[t] += row[f"rows_{t}"]
        quarantined += row["quarantined"]

    # Every file of each partition: compaction may have split one into several.
    published = {t: lake.partition_rows(events_dir(t, day)) for t in types}
    published["quarantine"] = lake.partition_rows(quarantine_dir(day))
    for name, expected in {**totals, "quarantine": quarantined}.items():
        if published[name] != expected:
            audit.output_mismatches.append(
                {"table": name, "ledger": expected, "published": published[name]}
            )

    neighbours: dict[date, list[dict[str, Any]] | None] = {}
    for row in rows:
        partitions = reading_partitions(row["landing_dt"])
        for p in partitions:
            if p not in neighbours:
                neighbours[p] = rows if p == day else _read_ledger(lake, p)
        missing = [p for p in partitions if neighbours[p] is None]
        if missing:
            audit.files_awaiting_partitions.append(row["landing_file"])
            continue
        audit.files_complete += 1
        seen = [
            r
            for p in partitions
            for r in neighbours[p] or []
            if r["landing_file"] == row["landing_file"]
        ]
        taken = sum(r["lines_taken"] for r in seen)
        sizes = {(r["file_lines"], r["file_bytes"]) for r in seen}
        if len(seen) != len(partitions) or taken != row["file_lines"] or len(sizes) != 1:
            audit.file_total_mismatches.append(
                {
                    "landing_file": row["landing_file"],
                    "file_lines": row["file_lines"],
                    "lines_taken_by_all_partitions": taken,
                    "partitions_seen": len(seen),
                    "versions_seen": len(sizes),
                }
            )
    return audit


def ledger_schema(event_types: list[str]) -> pa.Schema:
    fields = [
        ("landing_file", pa.string()),
        ("landing_dt", pa.date32()),
        ("file_bytes", pa.int64()),
        ("file_lines", pa.int64()),
        ("file_truncated", pa.bool_()),
        ("file_errors", pa.string()),
        ("lines_taken", pa.int64()),
        ("rows_written", pa.int64()),
        *[(f"rows_{t}", pa.int64()) for t in event_types],
        ("quarantined", pa.int64()),
        *[(f"quarantined_{r}", pa.int64()) for r in REASONS],
        ("duplicates", pa.int64()),
        (ERASED, pa.int64()),
        ("blank_lines", pa.int64()),
        ("rows_landed_late", pa.int64()),
        ("pii_key_id", pa.string()),
    ]
    return pa.schema(fields)


def ledger_table(
    con: duckdb.DuckDBPyConnection,
    day: date,
    files: list[LandingFile],
    stats: list[ReadStats],
    event_types: list[str],
    key: PiiKey,
) -> pa.Table:
    taken = dict(con.execute(load_sql("ingest/lines_taken.sql")).fetchall())
    counts: dict[int, Counter[str]] = {i: Counter() for i in range(len(files))}
    for file_id, fate, event_type, reason, lines, late in con.execute(
        load_sql("ingest/ledger_counts.sql"), {"day": day}
    ).fetchall():
        c = counts[file_id]
        if fate == "row":
            c["rows_written"] += lines
            c[f"rows_{event_type}"] += lines
            c["rows_landed_late"] += late
        elif fate == "quarantined":
            c["quarantined"] += lines
            c[f"quarantined_{reason}"] += lines
        elif fate == "duplicate":
            c["duplicates"] += lines
        elif fate == ERASED:
            c[ERASED] += lines
        else:
            raise RuntimeError(f"{files[file_id].path}: {lines} line(s) with no fate ({fate})")
    schema = ledger_schema(event_types)
    rows = []
    for file_id, (landing, st) in enumerate(zip(files, stats, strict=True)):
        # A blank line has no event date: like any line without one, its landing date owns it.
        blank = st.blank_lines if landing.landing_dt == day else 0
        row: dict[str, Any] = {
            "landing_file": landing.path,
            "landing_dt": landing.landing_dt,
            "file_bytes": landing.size_bytes,
            "file_lines": st.lines,
            "file_truncated": st.truncated,
            "file_errors": "; ".join(st.errors) or None,
            "lines_taken": taken.get(file_id, 0) + blank,
            "blank_lines": blank,
            "pii_key_id": key.key_id,
        }
        for name in schema.names:
            row.setdefault(name, counts[file_id][name])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)
