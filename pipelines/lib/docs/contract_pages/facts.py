"""What several contract pages state that the code decides (the late-arrival window, path
patterns, reason codes, ledger columns, the schema's fields), and their Markdown spelling."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pipelines.lib.docs import markdown as md
from pipelines.lib.ingest.landing import landing_dates, reading_partitions
from pipelines.lib.ingest.ledger import ledger_schema
from pipelines.lib.ingest.reasons import REASONS

# A date no real partition has, to turn the path functions into patterns.
SENTINEL = date(1, 2, 3)
_DATE_PATTERN = "YYYY-MM-DD"
TYPE_PATTERN = "<event_type>"
# The day the pages' examples are about.
EXAMPLE_DAY = date(2025, 6, 4)


class DocsError(ValueError):
    """The code says something the documentation cannot render (yet): fix this package."""


# --- markdown helpers ----------------------------------------------------------------------------


def num(value: Any) -> str:
    return json.dumps(value)


def size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit} ({n} bytes)"
    return f"{n} bytes"


def days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def relative_day(origin: str, offset: int) -> str:
    return origin if offset == 0 else f"{origin}{offset:+d}"


# --- facts read from code ------------------------------------------------------------------------


def pattern(path_of: Callable[..., str], *args: str) -> str:
    return path_of(*args, SENTINEL).replace(SENTINEL.isoformat(), _DATE_PATTERN)


def hive_keys(rel: str) -> list[str]:
    return [part.split("=", 1)[0] for part in rel.split("/")[:-1] if "=" in part]


def _offsets(days_of: Callable[[date], list[date]]) -> list[int]:
    offsets = [(d - EXAMPLE_DAY).days for d in days_of(EXAMPLE_DAY)]
    if offsets != list(range(offsets[0], offsets[-1] + 1)):
        raise DocsError(f"{days_of.__name__} is not a contiguous range of days: {offsets}")
    return offsets


@dataclass(frozen=True)
class Window:
    """The late-arrival window, as the ingest code defines it."""

    reads: list[int]  # landing dates partition D reads, as offsets from D
    readers: list[int]  # partitions that read landing date A (and may own its lines), from A

    @property
    def before(self) -> int:
        """How far an event date may lie after its arrival date."""
        return self.readers[-1]

    @property
    def after(self) -> int:
        """How many days late a line may arrive."""
        return -self.readers[0]


def window() -> Window:
    w = Window(reads=_offsets(landing_dates), readers=_offsets(reading_partitions))
    if w.readers != sorted(-n for n in w.reads):
        raise DocsError(f"reading_partitions {w.readers} is not the inverse of landing_dates")
    return w


def reason(name: str) -> str:
    if name not in REASONS:
        raise DocsError(f"the docs name reason {name!r}, which is not in REASONS any more")
    return md.code(name)


def ledger_column(name: str) -> str:
    if name not in ledger_schema([]).names:
        raise DocsError(f"the docs name ledger column {name!r}, which ledger_schema does not have")
    return md.code(name)


# --- schema walking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    steps: tuple[str, ...]  # ("items", "[]", "position")
    spec: dict[str, Any]
    required: bool
    required_with: tuple[str, ...]

    @property
    def name(self) -> str:
        out = self.steps[0]
        for step in self.steps[1:]:
            out += step if step == "[]" else f".{step}"
        return out


def fields(node: dict[str, Any], steps: tuple[str, ...] = ()) -> Iterator[Field]:
    required = set(node.get("required", []))
    together = node.get("dependentRequired", {})
    for name, spec in node.get("properties", {}).items():
        here = (*steps, name)
        yield Field(here, spec, name in required, tuple(together.get(name, ())))
        yield from _inner_fields(spec, here)


def _inner_fields(spec: dict[str, Any], steps: tuple[str, ...]) -> Iterator[Field]:
    if spec.get("properties"):
        yield from fields(spec, steps)
    items = spec.get("items")
    if isinstance(items, dict):
        yield from _inner_fields(items, (*steps, "[]"))


def handling(field: Field, table: Mapping[str, str]) -> str:
    """How ``table`` (a page's wording) describes the field's ``x-pii-handling``."""
    policy = field.spec.get("x-pii-handling")
    if policy in ("hash", "scrub") and len(field.steps) > 1:
        # The SQL compiler hashes and scrubs top-level columns only; never document a hash or a
        # scrub that does not happen (the detector does read nested identifiers: pii_policy.py).
        raise DocsError(
            f"{field.name}: x-pii-handling on a nested field is not applied by ingest "
            "(pipelines/lib/schemas/sql_compiler.py handles top-level columns only)"
        )
    if policy is None:
        return "—"
    if policy not in table:
        raise DocsError(f"{field.name}: no documentation for x-pii-handling {policy!r}")
    return table[policy]
