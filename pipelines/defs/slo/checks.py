"""SLO and anomaly checks on the daily rollup: each SLO of ``slo.yaml`` (measured, target, budget
used this month) and each watchable metric against its adaptive band. Severity WARN and never
blocking: a missed SLO or an odd day is news for the on-call, not a reason to hold the day back.

The checks target ``traffic_daily``, so every job that builds the daily rollups runs them after
the day is built: ``daily_lake`` (the schedule, and the landing sensor's re-runs of a day whose
late files landed, so the figures are recomputed as late rows arrive) and ``rollups_daily``.
They also read ``traffic_parts`` (per-surface latency), the ledger and the quarantine, declared
as dependencies so a run that builds those builds them first. One op evaluates them all (a step
per check would start as many processes); it computes only what the selected checks need.

The check set is fixed when definitions load, without reading the SLO file (configuration is
read when a run starts): one check per SLO metric, with every surface's latency in the one
latency check, and one anomaly check per metric that can be watched, which passes saying so when
``slo.yaml`` does not watch it.
"""

from collections.abc import Iterator, Sequence
from datetime import date

import dagster as dg

from pipelines.defs.keys import LEDGER, QUARANTINE, TRAFFIC_DAILY, TRAFFIC_PARTS
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LakeResource, SloResource
from pipelines.lib.slo.anomaly import BandSettings
from pipelines.lib.slo.evaluate import (
    METRICS,
    AnomalyResult,
    SloResult,
    anomalies_for_day,
    evaluate_day,
)

SAMPLE_SIZE = 20

SLO_LATENCY_P95 = "slo_latency_p95_ms"
SLO_LATENCY_P99 = "slo_latency_p99_ms"
SLO_ERROR_RATE = "slo_error_rate"
SLO_CTR = "slo_ctr"
SLO_QUARANTINE_SHARE = "slo_quarantine_share"
SLO_LATE_SHARE = "slo_late_share"
# SloResult.metric -> its check.
SLO_CHECKS = {
    "latency_p95_ms": SLO_LATENCY_P95,
    "latency_p99_ms": SLO_LATENCY_P99,
    "error_rate": SLO_ERROR_RATE,
    "ctr": SLO_CTR,
    "quarantine_share": SLO_QUARANTINE_SHARE,
    "late_share": SLO_LATE_SHARE,
}
ANOMALY_CHECKS = {metric: f"anomaly_{metric}" for metric in METRICS}

_DAYS_BUDGET = (
    "Budget used: days of the month, through this one, that missed the target / "
    "allowed_bad_days_per_month."
)
_SLO_DESCRIPTIONS = {
    SLO_LATENCY_P95: "The 95th percentile of the day's ranking latency per surface at most the "
    "surface's target (slo.yaml latency_p95_ms; default for surfaces not listed). Fails when any "
    f"surface misses; the metadata leads with the surface nearest or furthest over. {_DAYS_BUDGET}",
    SLO_LATENCY_P99: "The 99th percentile of the day's ranking latency per surface at most the "
    "surface's target (slo.yaml latency_p99_ms; default for surfaces not listed). Fails when any "
    f"surface misses; the metadata leads with the surface nearest or furthest over. {_DAYS_BUDGET}",
    SLO_ERROR_RATE: "Error events per request of the day at most error_rate_max (slo.yaml). "
    "Budget used: errors / (error_rate_max x requests), both from the 1st of the month through "
    "the day.",
    SLO_CTR: "Clicks per impression of the day (the CTR proxy) at least ctr_min (slo.yaml). "
    + _DAYS_BUDGET,
    SLO_QUARANTINE_SHARE: "Quarantined lines / lines read (the day's ledger) at most "
    "quarantine_share_max (slo.yaml). Budget used: quarantined / (quarantine_share_max x lines "
    "read), both from the 1st of the month through the day.",
    SLO_LATE_SHARE: "Rows that landed after their event date / rows written (the day's ledger) at "
    "most late_share_max (slo.yaml); grows as late files land and the day is re-run. Budget "
    "used: late rows / (late_share_max x rows), both from the 1st of the month through the day.",
}


def _anomaly_description(metric: str) -> str:
    return (
        f"The day's {metric} inside the band its own trailing days predict (EWMA with weekly "
        "seasonality, slo.yaml anomaly settings; pipelines/lib/slo/anomaly.py). A day outside "
        "fails with its z-score, the band and, where the metric splits by slice, the slice that "
        "moved most; a day with too little history, or a metric slo.yaml does not watch, passes "
        "saying so."
    )


def _specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    reads = [TRAFFIC_PARTS, LEDGER, QUARANTINE]
    descriptions = {
        **_SLO_DESCRIPTIONS,
        **{name: _anomaly_description(m) for m, name in ANOMALY_CHECKS.items()},
    }
    return [
        dg.AssetCheckSpec(
            name,
            asset=TRAFFIC_DAILY,
            description=description,
            additional_deps=reads,
            blocking=False,
            partitions_def=partitions_def,
        )
        for name, description in descriptions.items()
    ]


def _nearness(result: SloResult) -> float:
    """How close to (above 1: how far past) its target the measured value is."""
    if result.measured is None:
        return float("-inf")
    if result.direction == "max":
        return result.measured / result.target
    return result.target / result.measured if result.measured else float("inf")


def slo_check_result(name: str, results: Sequence[SloResult]) -> dg.AssetCheckResult:
    """One SLO check from its metric's results (one per surface for latency)."""
    if not results:
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"slices": 0, "note": "no surface had rankings and none is configured"},
        )
    failing = [r for r in results if not r.ok]
    lead = max(results, key=_nearness)
    metadata = {
        "measured": lead.measured,
        "target": lead.target,
        "direction": lead.direction,
        "budget_used_this_month": lead.budget_used,
        # Spent against the month-to-date pace, as the reports show it (1.0: on pace).
        "budget_burn_vs_pace": lead.budget.burn if lead.budget else None,
        "slice": lead.slice,
    }
    if len(results) > 1 or results[0].slice is not None:
        metadata |= {
            "slices": len(results),
            "slices_failing": len(failing),
            "sample_failing_slices": [r.slice for r in failing[:SAMPLE_SIZE]],
            "by_slice": dg.MetadataValue.json(
                {
                    r.slice: {
                        "measured": r.measured,
                        "target": r.target,
                        "ok": r.ok,
                        "budget_used_this_month": r.budget_used,
                        "budget_burn_vs_pace": r.budget.burn if r.budget else None,
                    }
                    for r in results
                }
            ),
        }
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def anomaly_check_result(
    name: str, result: AnomalyResult | None, settings: BandSettings
) -> dg.AssetCheckResult:
    """One anomaly check; ``result`` None: slo.yaml does not watch the metric."""
    if result is None:
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"watched": False, "note": "not under anomaly.watched in the SLO file"},
        )
    metadata = {"watched": True, "value": result.value, "history_days": result.history_days}
    if result.expected is None:
        note = (
            "no value for the day"
            if result.value is None
            else f"not judged: fewer than min_history={settings.min_history} usable days in the "
            f"{settings.window_days} before it (days missing, flagged, or before a level shift)"
        )
        return dg.AssetCheckResult(
            check_name=name,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**metadata, "judged": False, "note": note},
        )
    return dg.AssetCheckResult(
        check_name=name,
        passed=not result.flagged,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **metadata,
            "judged": True,
            "z_score": result.z_score,
            "expected": result.expected,
            "lower": result.lower,
            "upper": result.upper,
            "width": settings.width,
            "direction": result.direction,
            "slice_moved_most": result.slice_moved_most,
        },
    )


def build_slo_checks(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name="slo_checks",
        specs=_specs(partitions_def),
        can_subset=True,
        description="The day's SLOs (slo.yaml) and its metrics against their adaptive bands.",
    )
    def slo_checks(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, slo: SloResource
    ) -> Iterator[dg.AssetCheckResult]:
        day = date.fromisoformat(context.partition_key)
        selected = {key.name for key in context.selected_asset_check_keys}
        config = slo.config()
        the_lake = lake.lake()
        if selected & set(SLO_CHECKS.values()):
            results = evaluate_day(the_lake, day, config)
            for metric, name in SLO_CHECKS.items():
                if name in selected:
                    yield slo_check_result(name, [r for r in results if r.metric == metric])
        if selected & set(ANOMALY_CHECKS.values()):
            by_metric = {a.metric: a for a in anomalies_for_day(the_lake, day, config)}
            for metric, name in ANOMALY_CHECKS.items():
                if name in selected:
                    yield anomaly_check_result(name, by_metric.get(metric), config.bands)

    return slo_checks


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[build_slo_checks(daily_partitions())])
