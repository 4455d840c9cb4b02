"""A code location for the run-recovery test: one job whose single op takes a slot of the
``ingest`` pool, writes its process id (the run worker's: the job runs in process) and holds the
slot for ``hold_s`` seconds. Nothing else (no schedules or sensors), so the daemon only runs what
the test submits."""

import os
import time

import dagster as dg


@dg.op(pool="ingest", config_schema={"pid_file": str, "hold_s": float})
def hold_ingest_slot(context: dg.OpExecutionContext) -> None:
    pid_file = context.op_config["pid_file"]
    with open(f"{pid_file}.tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(f"{pid_file}.tmp", pid_file)  # whole or absent
    time.sleep(context.op_config["hold_s"])


@dg.job(executor_def=dg.in_process_executor)
def ingest_pool_job() -> None:
    hold_ingest_slot()


defs = dg.Definitions(jobs=[ingest_pool_job])
