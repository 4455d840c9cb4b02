"""A landing file swapped for a symlink between the listing and the read is followed out of
landing/ (issue 20 attack finding; a time-of-check/time-of-use race).

``landing._local_fate`` checks where a symlink leads when the folder is listed; ``_blocks`` later
opens the name again, following whatever it is by then. A producer with write access to landing/
(every producer has it) replaces its file by a link to any file the pipeline can read (a key
file, a credentials file) after the listing: ingest reads it, and its lines land in the
quarantine as malformed JSON (scrubbed of PII patterns only) for anyone who reads the quarantine.
Here the swap happens right after the listing (a wrapper of the listing function), the window a
real attacker races for; files late in a big day are read seconds to minutes after the listing."""

from __future__ import annotations

import os

import duckdb

import pipelines.lib.ingest.partition as ingest_module
from tests.conftest import DAY, LakeHelper, event, line

SECRET = "telemetry-pii-key=Zq8v3Lr0Kx2Hn5Tp"


def test_a_link_swapped_in_after_the_listing_is_not_followed_out_of_landing(
    lake: LakeHelper, tmp_path, monkeypatch
) -> None:
    secret_file = tmp_path / "secrets.env"
    secret_file.write_text(SECRET + "\n")
    lake.land(DAY, "a.jsonl", [line(event("click"))])
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "z.jsonl"
    path.write_bytes(line(event("click")) + b"\n")

    listing = ingest_module.list_landing_files

    def list_then_swap(*args, **kwargs):
        files = listing(*args, **kwargs)
        path.unlink()
        os.symlink(secret_file, path)  # the producer's move, after the listing
        return files

    monkeypatch.setattr(ingest_module, "list_landing_files", list_then_swap)
    lake.ingest()
    con = duckdb.connect()
    stored = "\n".join(
        r[0]
        for p in lake.root.rglob("*.parquet")
        if "landing" not in p.parts
        for r in con.execute(f"select to_json(t)::varchar from read_parquet('{p}') t").fetchall()
    )
    assert "Zq8v3Lr0Kx2Hn5Tp" not in stored, "a file outside landing/ was read into the lake"
