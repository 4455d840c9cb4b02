"""Who was erased, as ingest and erasure both need it: the hashed ids in the erasure audit log
(``ops/erasure/``), and the ledger's ``erased`` fate, which accounts for their lines.

Here, beside ingest rather than in ``lib/privacy/``: ingest reads it on every run (to leave the
users' lines out), and ingest sits below the privacy operations, which must never be imported from
below (tests/test_layers.py). The erasure (``lib/privacy/``) writes the log and uses this too."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lib.lake.storage import Lake

AUDIT_DIR = "ops/erasure"
ERASED = "erased"  # lines removed at a user's request: a fate like rows, quarantined, duplicates


def erased_users(lake: Lake) -> pa.Table:
    """(hashed_id, received_on): every user erased so far and the day the request arrived; ingest
    drops their rows of event dates up to that day."""
    lake.fs.invalidate_cache()
    paths = sorted(lake.fs.glob(lake.path(f"{AUDIT_DIR}/request_id=*/*.parquet")))
    if not paths:
        return pa.table(
            {"hashed_id": pa.array([], pa.string()), "received_on": pa.array([], pa.date32())}
        )
    log = pa.concat_tables(
        pq.read_table(p, filesystem=lake.fs, columns=["hashed_ids", "received_at"]) for p in paths
    )
    exploded = pa.table(
        {
            "hashed_id": pc.list_flatten(log["hashed_ids"]),
            "received_on": pc.cast(
                pc.take(log["received_at"], pc.list_parent_indices(log["hashed_ids"])),
                pa.date32(),
            ),
        }
    )
    latest = exploded.group_by("hashed_id").aggregate([("received_on", "max")])
    return pa.table({"hashed_id": latest["hashed_id"], "received_on": latest["received_on_max"]})


def move_to_erased(ledger: pa.Table, per_file: dict[str, Counter[str]]) -> tuple[pa.Table, int]:
    """The ledger with erased lines moved from their fate to ``erased``, per landing file.
    ``per_file`` maps a landing file to counts by ledger column (``rows_<type>`` or
    ``quarantined_<reason>``); the totals (``rows_written``, ``quarantined``) follow. Returns the
    new table and how many lines moved."""
    if ERASED not in ledger.column_names:
        ledger = ledger.append_column(ERASED, pa.array([0] * ledger.num_rows, pa.int64()))
    columns = {name: ledger.column(name).to_pylist() for name in ledger.column_names}
    moved = 0
    for i, landing_file in enumerate(columns["landing_file"]):
        for column, n in per_file.get(landing_file, {}).items():
            total = "rows_written" if column.startswith("rows_") else "quarantined"
            columns[column][i] -= n
            columns[total][i] -= n
            columns[ERASED][i] += n
            moved += n
    return pa.table(columns, schema=ledger.schema), moved
