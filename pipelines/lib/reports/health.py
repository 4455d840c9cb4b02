"""The health score: one number for how a day went, with its formula stated once (here) and
printed in every report, so a reader can recompute it from the report's own tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.lib.slo.evaluate import AnomalyResult, SloResult

START_POINTS = 100.0
SLO_VIOLATION_POINTS = 15.0
ANOMALY_POINTS = 10.0
# A 1% error rate costs 10 points, capped so one bad metric cannot hide the others' weight.
ERROR_RATE_POINTS_PER_PERCENT = 10.0
ERROR_RATE_MAX_POINTS = 30.0

FORMULA = (
    f"health = max(0, {START_POINTS:.0f} − {SLO_VIOLATION_POINTS:.0f} × SLOs violated − "
    f"{ANOMALY_POINTS:.0f} × anomalies flagged − min({ERROR_RATE_MAX_POINTS:.0f}, "
    f"{ERROR_RATE_POINTS_PER_PERCENT:.0f} × error rate in %)), rounded to 1 decimal. "
    "An SLO without data for the day is not a violation; the error rate is all traffic's."
)
WEEK_FORMULA = "The week's health is the mean of its days' scores, rounded to 1 decimal."


@dataclass(frozen=True)
class Health:
    score: float
    slo_violations: int
    anomalies: int
    error_rate: float | None
    slo_points: float
    anomaly_points: float
    error_rate_points: float


def is_violation(result: SloResult) -> bool:
    return not result.ok and result.measured is not None


def day_health(
    slos: Sequence[SloResult], anomalies: Sequence[AnomalyResult], error_rate: float | None
) -> Health:
    violations = sum(is_violation(r) for r in slos)
    flagged = sum(a.flagged for a in anomalies)
    return health(violations, flagged, error_rate)


def health(slo_violations: int, anomalies: int, error_rate: float | None) -> Health:
    """The score of one day (see FORMULA)."""
    if slo_violations < 0 or anomalies < 0:
        raise ValueError("slo_violations and anomalies are counts and cannot be negative")
    if error_rate is not None and error_rate < 0:
        raise ValueError(f"error_rate cannot be negative (got {error_rate})")
    slo_points = SLO_VIOLATION_POINTS * slo_violations
    anomaly_points = ANOMALY_POINTS * anomalies
    error_points = min(
        ERROR_RATE_MAX_POINTS, ERROR_RATE_POINTS_PER_PERCENT * 100 * (error_rate or 0.0)
    )
    score = max(0.0, START_POINTS - slo_points - anomaly_points - error_points)
    return Health(
        round(score, 1),
        slo_violations,
        anomalies,
        error_rate,
        slo_points,
        anomaly_points,
        error_points,
    )


def week_score(days: Sequence[Health]) -> float:
    """The week's score (see WEEK_FORMULA)."""
    if not days:
        raise ValueError("a week's health needs at least one day")
    return round(sum(d.score for d in days) / len(days), 1)
