"""Where a run's steps execute, and the preflight every run makes before its first step.

By default steps run in subprocesses of the run's own process (Dagster's multiprocess executor,
forking them from a preloaded server): under the Kubernetes run launcher that is one pod per run,
which suits runs of one partition. ``TELEMETRY_EXECUTOR=k8s`` runs each step in a Kubernetes Job
of its own (dagster-k8s, the ``deploy`` extra) for deployments that want to size steps
separately. ``TELEMETRY_EXECUTOR=in_process`` runs the steps one after another in the run's own
process: for a one-off command-line run of a few steps (one day's ingest), which then starts no
step processes. Read when definitions load, like the rest of the deployment's environment.

**Preflight.** Whichever it is, the executor first checks the run's configuration
(``lib/setup/doctor_checks.py``, what ``python -m pipelines.doctor`` prints) and fails the run with
one
``dg.Failure`` holding one line per problem, before any step starts. The executor is the one
place every job of the code location goes through, once per run, in the process that launches
the steps: resources are built per step (once in each step process), so a check there would fail
every root step separately, each with Dagster's resource-error traceback. The resources keep their
own checks of the values they were given (the launchpad can override the environment's), and
``execute_in_process``/``materialize`` (tests, the demo) use their own executor and skip this.
"""

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from pipelines.defs.resources import executor_name
from pipelines.lib.lake import settings
from pipelines.lib.setup import doctor_checks as doctor

EXECUTORS = settings.EXECUTORS
PRELOAD = "pipelines.definitions"


class PreflightExecutor(dg.Executor):
    """``inner``, after the preflight: a run with a configuration problem fails before its first
    step, with the problems as its one error."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        # Read here, when the run starts, from the environment its resources read (EnvVar).
        problems = doctor.problems(os.environ, datetime.now(UTC).date())
        if problems:
            raise dg.Failure(
                description="\n".join(problems),
                metadata={"check before launching": "python -m pipelines.doctor"},
                allow_retries=False,
            )
        yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:
        # Whatever else Dagster asks of the executor (a step-delegating one has more) is the
        # inner executor's.
        return getattr(self._inner, name)


def with_preflight(inner: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """``inner`` under the same name and config schema, its executor wrapped in the preflight."""
    create = inner.executor_creation_fn
    assert create is not None

    return dg.ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=lambda init_context: PreflightExecutor(create(init_context)),
        description=inner.description,
    )


@dg.definitions
def defs() -> dg.Definitions:
    name = executor_name()
    if name == "multiprocess":
        # Each step forks from a server that imported the code location once, instead of a fresh
        # interpreter re-importing Dagster, DuckDB, pyarrow and GX: measured on one day's
        # daily_lake run, 35 s instead of 101 s.
        return dg.Definitions(
            executor=with_preflight(dg.multiprocess_executor).configured(
                {"start_method": {"forkserver": {"preload_modules": [PRELOAD]}}}
            )
        )
    if name == "in_process":
        return dg.Definitions(executor=with_preflight(dg.in_process_executor))
    from dagster_k8s import k8s_job_executor

    return dg.Definitions(executor=with_preflight(k8s_job_executor))
