"""The SLO file (``slo.yaml`` at the project root, or ``TELEMETRY_SLO_FILE``): targets per metric
and the adaptive-threshold settings, loaded and validated whole so a bad file fails before any
check runs, with a message naming the key to fix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import slo_file
from pipelines.lib.slo.anomaly import BandSettings

# The day-level metrics the lake yields for charts and anomaly watching (evaluate.metric_series).
METRICS = (
    "requests",
    "impressions",
    "clicks",
    "errors",
    "ctr",
    "error_rate",
    "latency_p95_ms",
    "latency_p99_ms",
    "quarantine_share",
    "late_share",
)

_TOP_KEYS = (
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate_max",
    "ctr_min",
    "quarantine_share_max",
    "late_share_max",
    "allowed_bad_days_per_month",
    "anomaly",
)
_BAND_KEYS = tuple(f.name for f in fields(BandSettings))


@dataclass(frozen=True)
class LatencyTargets:
    """A latency ceiling per surface, in ms; surfaces not listed get ``default_ms``."""

    default_ms: float
    surfaces_ms: Mapping[str, float]

    def for_surface(self, surface: str) -> float:
        return self.surfaces_ms.get(surface, self.default_ms)


@dataclass(frozen=True)
class SloConfig:
    latency_p95_ms: LatencyTargets
    latency_p99_ms: LatencyTargets
    error_rate_max: float  # error events per request
    ctr_min: float  # clicks per impression
    quarantine_share_max: float  # quarantined lines / lines read
    late_share_max: float  # rows that landed after their event date / rows written
    allowed_bad_days_per_month: int  # budget of the per-day targets (latency, ctr)
    bands: BandSettings
    watched_metrics: tuple[str, ...]


def load_slo_config(path: Path | None = None) -> SloConfig:
    """Read and validate the SLO file (default: ``slo.yaml`` at the project root)."""
    path = path or slo_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"SLO file {path} cannot be read ({exc.strerror or exc}): set TELEMETRY_SLO_FILE to "
            "an SLO file, or unset it to use slo.yaml at the project root"
        ) from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"SLO file {path} is not valid YAML: {exc}") from exc
    return parse_slo_config(document, str(path))


def parse_slo_config(document: object, source: str = "slo.yaml") -> SloConfig:
    """The config a parsed SLO document describes; ConfigError names the first bad key."""
    doc = _mapping(document, source, "", _TOP_KEYS, _TOP_KEYS)
    anomaly = _mapping(doc["anomaly"] or {}, source, "anomaly", (*_BAND_KEYS, "watched"), ())
    bands = _band_settings(anomaly, source)
    return SloConfig(
        latency_p95_ms=_latency(doc["latency_p95_ms"], source, "latency_p95_ms"),
        latency_p99_ms=_latency(doc["latency_p99_ms"], source, "latency_p99_ms"),
        error_rate_max=_share(doc["error_rate_max"], source, "error_rate_max"),
        ctr_min=_share(doc["ctr_min"], source, "ctr_min"),
        quarantine_share_max=_share(doc["quarantine_share_max"], source, "quarantine_share_max"),
        late_share_max=_share(doc["late_share_max"], source, "late_share_max"),
        allowed_bad_days_per_month=_whole(
            doc["allowed_bad_days_per_month"], source, "allowed_bad_days_per_month", 1, 31
        ),
        bands=bands,
        watched_metrics=_watched(anomaly.get("watched", list(METRICS)), source),
    )


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key} {message}")


def _mapping(
    value: object, source: str, key: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    """``value`` as a mapping of known keys with the required ones present; ``key`` "" is the
    file's top level."""
    where = key or "the file"
    if not isinstance(value, dict):
        raise _fail(source, where, f"must be a mapping (got {value!r})")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _fail(source, where, f"has unknown keys {unknown}: allowed are {list(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _fail(source, f"{key}.{missing[0]}" if key else missing[0], "is missing")
    return value


def _number(value: object, source: str, key: str) -> float:
    # bool is an int to Python; `true` for a threshold is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(source, key, f"must be a number (got {value!r})")
    return float(value)


def _positive(value: object, source: str, key: str) -> float:
    number = _number(value, source, key)
    if number <= 0:
        raise _fail(source, key, f"must be above 0 (got {value!r})")
    return number


def _share(value: object, source: str, key: str) -> float:
    number = _number(value, source, key)
    if not 0 < number < 1:
        raise _fail(source, key, f"must be a share between 0 and 1, exclusive (got {value!r})")
    return number


def _whole(value: object, source: str, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(source, key, f"must be a whole number within {low}..{high} (got {value!r})")
    return value


def _latency(value: object, source: str, key: str) -> LatencyTargets:
    doc = _mapping(value, source, key, ("default", "surfaces"), ("default",))
    surfaces = doc.get("surfaces") or {}
    if not isinstance(surfaces, dict):
        raise _fail(source, f"{key}.surfaces", f"must map surface -> ms (got {surfaces!r})")
    return LatencyTargets(
        _positive(doc["default"], source, f"{key}.default"),
        {str(s): _positive(ms, source, f"{key}.surfaces.{s}") for s, ms in surfaces.items()},
    )


def _band_settings(doc: dict[str, Any], source: str) -> BandSettings:
    defaults = BandSettings()
    values: dict[str, Any] = {}
    for name in _BAND_KEYS:
        default = getattr(defaults, name)
        value = doc.get(name, default)
        key = f"anomaly.{name}"
        values[name] = (
            _whole(value, source, key, 0, 10_000)
            if isinstance(default, int)
            else _positive(value, source, key)
        )
    settings = BandSettings(**values)
    try:
        settings.validate()
    except ValueError as exc:
        # validate() names the setting; say where it lives.
        raise ConfigError(f"{source}: anomaly.{exc}") from exc
    return settings


def _watched(value: object, source: str) -> tuple[str, ...]:
    key = "anomaly.watched"
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise _fail(source, key, f"must be a list of metric names (got {value!r})")
    unknown = sorted(set(value) - set(METRICS))
    if unknown:
        raise _fail(source, key, f"names unknown metrics {unknown}: known are {list(METRICS)}")
    return tuple(m for m in METRICS if m in value)
