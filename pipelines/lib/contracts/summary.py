"""Read back what a day's contracts run wrote: one family's rate, its rules and sample offenders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lib.lake.paths import contracts_file, quality_file
from pipelines.lib.lake.storage import Lake

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class FamilySummary:
    family: str
    checked: int
    failed: int
    rate: float
    rules: list[dict[str, Any]]  # every rule and reported rate of the family
    sample: list[dict[str, Any]]  # up to SAMPLE_SIZE offending keys


def _read(lake: Lake, rel: str, family: str):
    if not lake.exists(rel):
        raise FileNotFoundError(f"{rel} not found: materialise the contracts partition first")
    table = pq.read_table(lake.path(rel), filesystem=lake.fs)
    return table.filter(pc.equal(table["family"], family))


def family_summary(lake: Lake, day: date, family: str) -> FamilySummary:
    quality = _read(lake, quality_file(day), family).to_pylist()
    [own] = [q for q in quality if q["scope"] == "family"]
    offenders = _read(lake, contracts_file(day), family).slice(0, SAMPLE_SIZE)
    return FamilySummary(
        family=family,
        checked=own["checked"],
        failed=own["failed"],
        rate=own["rate"],
        rules=[
            {k: q[k] for k in ("rule", "scope", "checked", "failed", "rate")}
            for q in quality
            if q["scope"] != "family"
        ],
        sample=offenders.select(["rule", "event_type", "event_id", "request_id"]).to_pylist(),
    )
