"""What the PII attack tests read back: every row of every Parquet file the lake wrote outside
landing/, as JSON text, lower-cased, after ingesting one line."""

from __future__ import annotations

import duckdb

from tests.conftest import DAY, LakeHelper, line


def stored_text(lake: LakeHelper) -> str:
    con = duckdb.connect()
    out = []
    for path in sorted(lake.root.rglob("*.parquet")):
        if "landing" in path.parts:
            continue
        rows = con.execute(f"select to_json(t)::varchar from read_parquet('{path}') t").fetchall()
        out.extend(r[0] for r in rows)
    return "\n".join(out).lower()


def ingest_one(lake: LakeHelper, doc: dict) -> str:
    """Land ``doc`` as the day's one line, ingest it, and return ``stored_text``."""
    lake.land(DAY, "a.jsonl", [line(doc)])
    lake.ingest()
    return stored_text(lake)
