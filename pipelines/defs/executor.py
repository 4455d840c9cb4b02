"""Where a run's steps execute. By default in subprocesses of the run's own process (Dagster's
multiprocess executor, forking them from a preloaded server): under the Kubernetes run launcher
that is one pod per run, which suits runs of one partition. ``TELEMETRY_EXECUTOR=k8s`` runs each
step in a Kubernetes Job of its own (dagster-k8s, the ``deploy`` extra) for deployments that want
to size steps separately. ``TELEMETRY_EXECUTOR=in_process`` runs the steps one after another
in the run's own process: for a one-off command-line run of a few steps (one day's ingest), which
then starts no step processes. Read when definitions load, like the rest of the deployment's
environment."""

import os

import dagster as dg

EXECUTORS = ("multiprocess", "in_process", "k8s")
PRELOAD = "pipelines.definitions"


@dg.definitions
def defs() -> dg.Definitions:
    name = os.environ.get("TELEMETRY_EXECUTOR") or "multiprocess"
    if name == "multiprocess":
        # Each step forks from a server that imported the code location once, instead of a fresh
        # interpreter re-importing Dagster, DuckDB, pyarrow and GX: measured on one day's
        # daily_lake run, 35 s instead of 101 s.
        return dg.Definitions(
            executor=dg.multiprocess_executor.configured(
                {"start_method": {"forkserver": {"preload_modules": [PRELOAD]}}}
            )
        )
    if name == "in_process":
        return dg.Definitions(executor=dg.in_process_executor)
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return dg.Definitions(executor=k8s_job_executor)
    raise ValueError(f"TELEMETRY_EXECUTOR={name!r}: set one of {', '.join(EXECUTORS)}")
