"""What a correct ingest must make of the sample: every written line counted where the ingest's
ownership rule puts it, as the manifest's ``partitions`` and ``orphan_clicks``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipelines.lib.sample.config import EVENT_TYPES, QUARANTINE_REASONS, day_date


class PartitionCounts:
    __slots__ = ("duplicates", "quarantined", "rows")

    def __init__(self) -> None:
        self.rows = [0, 0, 0, 0, 0]  # valid unique rows, by index into EVENT_TYPES
        self.duplicates = 0
        self.quarantined: dict[str, int] = defaultdict(int)

    def any(self) -> bool:
        return any(self.rows) or self.duplicates > 0 or any(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(zip(EVENT_TYPES, self.rows, strict=True)),
            "duplicates": self.duplicates,
            "quarantined": {
                r: self.quarantined[r] for r in QUARANTINE_REASONS if self.quarantined[r]
            },
        }


class Expectations:
    """Counts per partition (a day number), filled as lines are written."""

    def __init__(self) -> None:
        self.parts: dict[int, PartitionCounts] = defaultdict(PartitionCounts)
        self.orphans: dict[int, int] = defaultdict(int)

    def count(self, landing: int, event_day: int, what: int | str) -> int | str:
        """Apply the ingest's ownership rule to one written line and record it."""
        if what == "malformed_json":
            part, cat = landing, what
        elif event_day < landing - 2:
            part, cat = landing, "late_arrival"
        elif event_day > landing + 1:
            part, cat = landing, "future_timestamp"
        else:
            part, cat = event_day, what
        p = self.parts[part]
        if isinstance(cat, int):
            p.rows[cat] += 1
        elif cat == "duplicate":
            p.duplicates += 1
        else:
            p.quarantined[cat] += 1
        return cat

    def partitions(self) -> dict[str, Any]:
        return {
            day_date(d).isoformat(): self.parts[d].to_dict()
            for d in sorted(self.parts)
            if self.parts[d].any()
        }

    def orphan_clicks(self) -> dict[str, int]:
        return {day_date(d).isoformat(): self.orphans[d] for d in sorted(self.orphans)}
