"""What shapes the sample: ``SampleConfig``, the names and constants the manifest uses, and the
few helpers every part of the generator shares (days as numbers, fast UUIDs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import date, timedelta
from typing import Any

from pipelines.lib.ingest.reasons import REASONS

SCHEMA_VERSION = "1.0.0"
EVENT_TYPES = ("request", "ranking", "impression", "click", "error")
# The reasons the generator plants (it writes no over-long, non-UTF-8 or PII-in-identifier lines),
# in the ingest's precedence order.
QUARANTINE_REASONS = tuple(
    r for r in REASONS if r not in ("line_too_large", "not_utf8", "pii_in_field")
)
# Fault bands drawn once per event, in this order (``late`` is the valid late-but-in-window share).
FAULT_BANDS = (
    "late",
    "duplicate",
    "conflicting_duplicate",
    "malformed_json",
    "schema_violation",
    "unknown_event_type",
    "unknown_schema_version",
    "late_arrival",
    "future_timestamp",
)
MANIFEST_NAME = "sample_manifest.json"
# Beside the manifest while a sample is being written (see ``generate``).
WRITING_NAME = "sample_manifest.writing"
UNKNOWN_EVENT_TYPE = "pageview"
UNKNOWN_SCHEMA_VERSION = "9.9.9"

DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)
# Indexes into EVENT_TYPES (and a partition's row counts).
REQUEST, RANKING, IMPRESSION, CLICK, ERROR = range(5)
# The ranker's k and how often each is asked for; the expected volume depends on it.
K_CHOICES = ((10, 0.3), (20, 0.5), (50, 0.2))

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid4_from_bits(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` for 128 random bits, a bit faster."""
    h = bits.to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def day_date(n: int) -> date:
    return _EPOCH + timedelta(days=n)


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    share: float
    buckets: tuple[str, ...] = ("control", "treatment")


DEFAULT_EXPERIMENTS = (Experiment("exp-ranker-v2", 0.6), Experiment("exp-diversity", 0.4))


@dataclass(frozen=True)
class SampleConfig:
    """Everything that shapes the sample. Rates are per event unless said otherwise."""

    start: date = date(2025, 6, 2)
    days: int = 7
    seed: int = 7
    users: int = 2000
    items: int = 5000
    requests_per_day: int = 2000
    # Every request belongs to one experiment (users are assigned by share, buckets split equally).
    experiments: tuple[Experiment, ...] = DEFAULT_EXPERIMENTS
    ctr: float = 0.05  # clicks per impression (position-biased, this is the mean)
    impressions_per_request: int = 8
    error_rate: float = 0.01  # error events per request
    pii_in_errors: float = 0.3  # share of error messages holding an e-mail, phone or IPv4
    late_share: float = 0.03  # valid, lands on dt E+1 or E+2
    early_share: float = 0.005  # share of requests whose chain lands on dt E-1
    files_per_dt: int = 3
    gzip_level: int = 1  # fastest; the size of sample data does not matter
    malformed_json_rate: float = 0.001
    duplicate_rate: float = 0.01
    conflicting_duplicate_rate: float = 0.001
    schema_violation_rate: float = 0.002
    unknown_event_type_rate: float = 0.0005
    unknown_schema_version_rate: float = 0.0005
    late_arrival_rate: float = 0.001
    future_timestamp_rate: float = 0.0005
    orphan_click_rate: float = 0.001  # of clicks

    def __post_init__(self) -> None:
        if isinstance(self.start, str):
            object.__setattr__(self, "start", date.fromisoformat(self.start))
        experiments = tuple(
            Experiment(e["experiment_id"], e["share"], tuple(e.get("buckets", ("control",))))
            if isinstance(e, dict)
            else e
            for e in self.experiments
        )
        object.__setattr__(self, "experiments", experiments)
        for name in ("days", "users", "items", "files_per_dt", "impressions_per_request"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.requests_per_day < 0:
            raise ValueError("requests_per_day must be >= 0")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError("gzip_level must be 0..9")
        for name in self.rate_fields():
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if sum(self.band_rates()) >= 1.0:
            raise ValueError("late_share plus the fault rates must stay below 1")
        if not self.experiments or any(e.share <= 0 or not e.buckets for e in self.experiments):
            raise ValueError("experiments need a positive share and at least one bucket each")

    @staticmethod
    def rate_fields() -> tuple[str, ...]:
        names = ("ctr", "error_rate", "pii_in_errors", "late_share", "early_share")
        return names + tuple(f.name for f in fields(SampleConfig) if f.name.endswith("_rate"))

    def band_rates(self) -> tuple[float, ...]:
        """Per-event probabilities of ``FAULT_BANDS``, in that order."""
        return (self.late_share, *(getattr(self, f"{b}_rate") for b in FAULT_BANDS[1:]))

    @property
    def end(self) -> date:
        """Last event date generated (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def valid_events_per_request(self) -> float:
        total_w = sum(w for _, w in K_CHOICES)
        shown = sum(w * min(k, self.items, self.impressions_per_request) for k, w in K_CHOICES)
        shown /= total_w
        return 2 + shown * (1 + self.ctr) + self.error_rate

    def lines_per_request(self) -> float:
        """Expected landing lines per request, injected copies included."""
        return self.valid_events_per_request() * (1 + sum(self.band_rates()[1:]))

    def for_lines_per_day(self, lines: int) -> SampleConfig:
        """A copy whose ``requests_per_day`` yields about ``lines`` landing lines a day."""
        return replace(self, requests_per_day=max(1, round(lines / self.lines_per_request())))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["experiments"] = [
            {"experiment_id": e.experiment_id, "share": e.share, "buckets": list(e.buckets)}
            for e in self.experiments
        ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleConfig:
        """Inverse of ``to_dict`` (e.g. ``SampleConfig.from_dict(manifest["config"])``)."""
        return cls(**data)
