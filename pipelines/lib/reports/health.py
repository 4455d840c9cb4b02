"""The health score: one number for how a day went, with its formula stated once (here) and
printed in every report, so a reader can recompute it from the report's own tables.

Only what the SLO file calls bad costs points: an SLO violated on the day, an anomaly flagged on
it. A day within every SLO and without anomalies scores 100, whatever its error rate: an error
rate under its ceiling is the rate the SLO allows, and one above it is already an SLO violation
(docs/reports.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.lib.slo.evaluate import AnomalyResult, SloResult

START_POINTS = 100.0
SLO_VIOLATION_POINTS = 15.0
ANOMALY_POINTS = 10.0

FORMULA = (
    f"health = max(0, {START_POINTS:.0f} − {SLO_VIOLATION_POINTS:.0f} × SLOs violated − "
    f"{ANOMALY_POINTS:.0f} × anomalies flagged), rounded to 1 decimal. Nothing else costs "
    "points: a day within its SLOs and without anomalies scores 100. An SLO without data for "
    "the day is not a violation; a metric not yet judged (too little history) is not an anomaly."
)
WEEK_FORMULA = "The week's health is the mean of its days' scores, rounded to 1 decimal."


@dataclass(frozen=True)
class Health:
    score: float
    slo_violations: int
    anomalies: int
    slo_points: float
    anomaly_points: float


def is_violation(result: SloResult) -> bool:
    return not result.ok and result.measured is not None


def day_health(slos: Sequence[SloResult], anomalies: Sequence[AnomalyResult]) -> Health:
    violations = sum(is_violation(r) for r in slos)
    flagged = sum(a.flagged for a in anomalies)
    return health(violations, flagged)


def health(slo_violations: int, anomalies: int) -> Health:
    """The score of one day (see FORMULA)."""
    if slo_violations < 0 or anomalies < 0:
        raise ValueError("slo_violations and anomalies are counts and cannot be negative")
    slo_points = SLO_VIOLATION_POINTS * slo_violations
    anomaly_points = ANOMALY_POINTS * anomalies
    score = max(0.0, START_POINTS - slo_points - anomaly_points)
    return Health(round(score, 1), slo_violations, anomalies, slo_points, anomaly_points)


def week_score(days: Sequence[Health]) -> float:
    """The week's score (see WEEK_FORMULA)."""
    if not days:
        raise ValueError("a week's health needs at least one day")
    return round(sum(d.score for d in days) / len(days), 1)
