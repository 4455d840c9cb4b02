"""A writer that stalls past its lease still publishes (issue 20 attack finding): no fencing.

Ingest A holds the day's lease and stalls (SIGSTOP here; a VM pause, swap storm or stopped
container in life) for longer than the lease's time to live, after staging two tables. Ingest B
takes the expired lease over, removes A's staging as garbage, and publishes the day whole. Then
A resumes: it re-creates its staging for the remaining tables, writes a journal naming all seven,
finds the two removed ones "already applied" and swaps in the other five. Only after that does it
raise LeaseLostError. The day is left half B, half A, with no journal to recover: the click and
error tables disagree with the ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.schemas.registry import event_types
from tests.conftest import DAY, LakeHelper, event, line

CHILD = """
import os, signal, sys
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.lease import Lease, Owner
from pipelines.lib.lake.publish import INGEST_LEASE_GROUP
from pipelines.lib.lake.storage import Lake
from tests.conftest import DAY, KEY

lake = Lake(sys.argv[1])
stop_at = sys.argv[2] if len(sys.argv) > 2 else None

def fault(step):
    if step == stop_at:
        print("stalled", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)

with Lease(lake, INGEST_LEASE_GROUP, DAY.isoformat(), Owner.current(), ttl_s=10, wait_s=60):
    ingest_partition(lake, DAY, KEY, IngestSettings(), fault=fault)
"""
TTL_S = 10


def _child(lake: LakeHelper, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lake.root), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_writer_that_lost_its_lease_publishes_nothing(lake: LakeHelper) -> None:
    lake.land(DAY, "a.jsonl", [line(event(t)) for t in event_types() for _ in range(2)])
    lake.ingest()
    a = _child(lake, "staged:error")
    try:
        assert a.stdout.readline().strip() == "stalled"
        lake.land(DAY, "c.jsonl", [line(event(t)) for t in event_types() for _ in range(3)])
        time.sleep(TTL_S + 1)  # A's lease expires
        b = _child(lake)
        assert b.wait(timeout=120) == 0, b.stderr.read()
    finally:
        os.kill(a.pid, signal.SIGCONT)
        a.wait(timeout=120)
    audit = audit_ledger(lake.lake, DAY)
    assert audit.passed, f"the day is half one publish, half the other: {audit.output_mismatches}"
