"""The benchmark's steps: one registry entry each, run one at a time in a fresh child process.

A step is a function ``run(job: Job) -> Measured`` in its own module (so the child imports only
what that step needs, and its peak RSS is its own), registered in ``STEPS`` as
``"module:function"``. An entry without a function is printed as "not built"; one whose
``requires`` module is not installed is skipped with a note. Adding a step is one such function
plus one ``Step(...)`` line. ``STEPS`` are the one-day mode's, ``STEADY_STEPS`` ``--steady``'s.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """What a child needs: the cached inputs, the files partition ``day`` reads, a scratch dir."""

    lake: str  # a lake root whose landing/ holds the generated inputs (read only)
    day: str  # the event date, ISO format
    files: tuple[str, ...]  # landing files partition ``day`` reads, relative to ``lake``, in order
    scratch: str  # an empty folder this measurement owns (outputs, copies, DuckDB spill)
    threads: int = 2
    memory_limit: str = "2GB"  # DuckDB's cap for the ingest (DuckDBSettings.memory_limit)
    sample_lines: int = 100_000  # for steps too slow to run on the whole day

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(**{**data, "files": tuple(data["files"])})


@dataclass(frozen=True)
class Measured:
    """One timed run. ``lines`` is set when the step processed a sample rather than the day."""

    seconds: float
    lines: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    entry: str | None  # "module:function"; None while the step is not built
    in_scale: bool = False  # also measured by --scale on the 10x day
    requires: str | None = None  # an optional module the step needs (from the bench extra)

    @property
    def built(self) -> bool:
        return self.entry is not None

    @property
    def missing(self) -> str | None:
        """The required module when it is not installed (the step is then skipped)."""
        if self.requires is None or importlib.util.find_spec(self.requires) is not None:
            return None
        return self.requires

    def function(self) -> Callable[[Job], Measured]:
        if self.entry is None:
            raise ValueError(f"step {self.name} is not built")
        module, name = self.entry.split(":")
        return getattr(importlib.import_module(module), name)


STEPS = (
    Step("baseline", "baseline: DuckDB JSON->Parquet", "bench.steps.baseline:run", in_scale=True),
    Step("ingest", "ingest_partition", "bench.steps.ingest:run", in_scale=True),
    Step("contracts", "contract checks", "bench.steps.contracts:run"),
    Step("daily_rollups", "daily rollups", "bench.steps.rollups:daily"),
    Step("weekly_rollups", "weekly rollups (7 days)", "bench.steps.rollups:weekly"),
    Step("compaction", "compaction (sort + proof)", "bench.steps.compaction:run"),
    Step("naive", "naive Python loop", "bench.steps.naive:run"),
    Step("dlt", "dlt: filesystem -> Parquet", "bench.steps.peer_dlt:run", requires="dlt"),
)
# --steady: partition D of a lake of full landing dates; the copy reads landing date D only.
STEADY_STEPS = (
    Step("steady_baseline", "plain copy: 1 landing day", "bench.steps.steady:plain_copy"),
    Step("steady_ingest", "ingest_partition: 4 landing days", "bench.steps.ingest:run"),
    Step(
        "steady_ingest_indexed",
        "the same, landing files indexed",
        "bench.steps.steady:ingest_indexed",
    ),
    Step("steady_contracts", "contract checks", "bench.steps.steady:contract_checks"),
    Step("steady_daily_rollups", "daily rollups", "bench.steps.steady:daily_rollups"),
)
STEPS_BY_NAME = {step.name: step for step in (*STEPS, *STEADY_STEPS)}
