"""The single-table rules of one day, derived from the event schemas so they cannot drift from the
contract: completeness (required fields present; optional fields' presence reported) and validity
(patterns, hashed identifiers, enums, ranges, lengths, timestamps within the day).

Plain data here; ``gx_suites.py`` turns each spec into a Great Expectations expectation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pipelines.lib.contracts.rules import COMPLETENESS, VALIDITY
from pipelines.lib.schemas.registry import EventSchema, accepted_versions

# What a keyed hash (HMAC-SHA256, hex) looks like: a raw identifier in its place is a leak.
HASHED_ID_PATTERN = "^[0-9a-f]{64}$"
_SCALARS = {"string", "integer", "number", "boolean"}

# Each kind of expectation, the Great Expectations class that runs it, and where it comes from.
KINDS = {
    "not_null": ("ExpectColumnValuesToNotBeNull", "a required field is present"),
    "present": ("ExpectColumnValuesToNotBeNull (mostly 0)", "an optional field's presence rate"),
    "pattern": (
        "ExpectColumnValuesToMatchRegex (DuckDB)",
        "the schema's `pattern`; hashed identifiers must be 64 lowercase hex digits",
    ),
    "in_set": ("ExpectColumnValuesToBeInSet", "the schema's `enum` or `const`"),
    "between": (
        "ExpectColumnValuesToBeBetween",
        "the schema's `minimum`/`maximum`; `timestamp_ms` within the partition's UTC day",
    ),
    "length": (
        "ExpectColumnValueLengthsToBeBetween",
        "the schema's `minLength`/`maxLength` (where no `pattern` is given)",
    ),
}


@dataclass(frozen=True)
class ExpectationSpec:
    family: str
    event_type: str
    column: str
    kind: str  # a key of KINDS
    kwargs: dict[str, Any] = field(default_factory=dict)
    gated: bool = True  # False: a rate reported, never a failure (optional fields' presence)
    note: str | None = None  # how the docs state arguments that depend on the day

    @property
    def rule(self) -> str:
        return f"{self.event_type}.{self.column}:{self.kind}"


def day_bounds_ms(day: date) -> tuple[int, int]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000) - 1


def _validity(schema: EventSchema, column: str, spec: dict[str, Any], day: date) -> list:
    def make(kind: str, **kwargs: Any) -> ExpectationSpec:
        return ExpectationSpec(VALIDITY, schema.event_type, column, kind, kwargs)

    if column == "timestamp_ms":
        low, high = day_bounds_ms(day)
        return [
            ExpectationSpec(
                VALIDITY,
                schema.event_type,
                column,
                "between",
                {"min_value": low, "max_value": high},
                note="within the UTC day D",
            )
        ]
    if column == "schema_version":
        # The table holds the rows of every version ingest accepts, not only the current one's.
        accepted = accepted_versions().get(schema.event_type, [schema])
        return [make("in_set", value_set=[s.version for s in accepted])]
    if spec.get("x-pii-handling") == "hash":
        return [make("pattern", regex=HASHED_ID_PATTERN)]
    if spec.get("type") not in _SCALARS or spec.get("x-pii-handling") == "scrub":
        return []  # nested values and scrubbed text: ingest validated them before scrubbing
    out = []
    if "pattern" in spec:
        out.append(make("pattern", regex=spec["pattern"]))
    if "const" in spec or "enum" in spec:
        out.append(make("in_set", value_set=[spec["const"]] if "const" in spec else spec["enum"]))
    if "minimum" in spec or "maximum" in spec:
        out.append(make("between", min_value=spec.get("minimum"), max_value=spec.get("maximum")))
    if ("minLength" in spec or "maxLength" in spec) and "pattern" not in spec:
        out.append(make("length", min_value=spec.get("minLength"), max_value=spec.get("maxLength")))
    return out


def expectation_specs(schema: EventSchema, day: date) -> list[ExpectationSpec]:
    """The day's expectations for one event type, in schema property order."""
    required = set(schema.required)
    specs = []
    for column, spec in schema.properties.items():
        specs.append(
            ExpectationSpec(
                COMPLETENESS,
                schema.event_type,
                column,
                "not_null" if column in required else "present",
                gated=column in required,
            )
        )
        specs += _validity(schema, column, spec, day)
    return specs
