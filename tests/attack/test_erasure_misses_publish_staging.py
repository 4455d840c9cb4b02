"""An erasure reports success while a killed publish's staging still holds the user's rows (issue
19/20 attack finding).

A publish killed before its journal (a ``kill -9`` or OOM while staging) leaves the day's new
version under ``_publish/staging/``; one killed after removing its journal leaves the previous
version there (the exchange put it there). Either copy is removed only by the next publish of the
same day, which may never come for an old day. The erasure's proof scan does not look there, so
it succeeds while Parquet files in the lake still hold the erased user's hashed rows."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import duckdb
import pytest

from pipelines.lib.ingest import pii
from pipelines.lib.lake import publish
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.requests import ErasureRequest
from tests.conftest import DAY, LakeHelper, event, line

USER = "victim-000777"

CHILD = """
import os, sys
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.storage import Lake
from tests.conftest import DAY, KEY

def fault(step):
    if step == sys.argv[2]:
        os._exit(9)  # the process dies here, as with kill -9

ingest_partition(Lake(sys.argv[1]), DAY, KEY, IngestSettings(), fault=fault)
"""


@pytest.mark.parametrize("step", [f"{publish.STAGED}:ledger", publish.JOURNAL_REMOVED])
def test_erasure_leaves_no_row_of_the_user_anywhere_in_the_lake(
    lake: LakeHelper, step: str
) -> None:
    lake.land(DAY, "a.jsonl", [line(event("click", user_id=USER)) for _ in range(3)])
    lake.ingest()
    lake.land(DAY, "b.jsonl", [line(event("click"))])
    killed = subprocess.run(
        [sys.executable, "-c", CHILD, str(lake.root), step], cwd=PROJECT_ROOT, check=False
    )
    assert killed.returncode == 9

    erasure = erase(lake.lake, ErasureRequest("r-1", (USER,), datetime.now(UTC)), [pii.DEV_KEY])
    assert not any(erasure.proof.values())

    hashed = pii.hmac_hex(pii.DEV_KEY, USER)
    con = duckdb.connect()
    holding = [
        str(p.relative_to(lake.root))
        for p in lake.root.rglob("*.parquet")
        if con.execute(
            f"select count(*) from read_parquet('{p}') t where contains(to_json(t)::varchar, ?)",
            [hashed],
        ).fetchone()[0]
    ]
    assert not holding, f"the erased user's rows are still in {holding}"
