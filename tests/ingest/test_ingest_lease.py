"""The ingest run takes the partition's lease: while another process holds it, a run waits up to
TELEMETRY_LEASE_WAIT_S and then fails naming the holder, writing nothing; once the holder is
killed its lease expires and the next run takes it over, ingests, and releases it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.lake.lease import lease_path
from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import DAY, event, line


def _ingest(lake, wait_s: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_ingest_assets(daily_partitions())],
        partition_key=DAY.isoformat(),
        resources={
            "lake": LakeResource(root=str(lake.root), lease_wait_s=wait_s),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
        },
        raise_on_error=False,
        instance=instance,
    )


def test_a_run_waits_for_the_partition_lease_then_refuses_or_takes_it_over(lake):
    lake.land(DAY, "a.jsonl", [line(event("request")) for _ in range(20)])
    assert DAY.isoformat() == "2025-06-02"  # the partition tests/lake/lease_worker.py takes
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.lake.lease_worker", str(lake.root), "", "hold",
         "run-other", "3", "0"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = _ingest(lake, wait_s="1", instance=dg.DagsterInstance.ephemeral())
        assert not refused.success
        (failure,) = refused.get_step_failure_events()
        error = failure.event_specific_data.error.cause  # the step's error wraps ours
        assert error.cls_name == "LeaseHeldError"
        message = error.message
        assert (
            f"partition ingest/2025-06-02 is being written by run run-other (pid {holder.pid}"
            in message
        )
        assert not (lake.root / "events").exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()

    started = time.monotonic()
    instance = dg.DagsterInstance.ephemeral()
    result = _ingest(lake, wait_s="30", instance=instance)
    assert result.success
    assert time.monotonic() - started < 30
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("took over the expired lease of run run-other" in m for m in logs), logs
    assert len(lake.events("request")) == 20
    assert not (lake.root / lease_path("ingest", DAY.isoformat())).exists()
