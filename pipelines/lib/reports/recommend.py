"""Recommendations: for every SLO missed, anomaly flagged or experiment whose split is off, one
sentence naming the metric and the slice, what it measured against what, and where to look."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from pipelines.lib.reports import fmt
from pipelines.lib.reports.document import Code, Inline, Num, Paragraph
from pipelines.lib.reports.health import is_violation
from pipelines.lib.slo.evaluate import AnomalyResult, SloResult

ALL_TRAFFIC = "all traffic"
# A sample-ratio mismatch this unlikely by chance means the assignment is broken, not noisy.
SRM_ALERT_P = 0.001
NOTHING_TO_DO = Paragraph(
    ("Nothing to act on: every SLO with data was met and no anomaly was flagged.",)
)


def _where_to_look(
    metric: str, slice_: str, top_error: Mapping | None, top_reason: str | None
) -> tuple[Inline, ...]:
    rows_of_slice: tuple[Inline, ...] = (Code("traffic_daily"), "'s rows of ", Code(slice_))
    if metric.startswith("latency_"):
        return (
            Code("traffic_hourly"),
            " for the hours it rose, and ",
            *rows_of_slice,
            " by device_type and bucket",
        )
    if metric in ("error_rate", "errors") and top_error is not None:
        code = f"{top_error['component']}/{top_error['error_code']}"
        return (Code("errors_daily"), ", whose top code is ", Code(code), ", and ", *rows_of_slice)
    if metric == "ctr":
        return (*rows_of_slice, " by bucket and device_type, and ", Code("experiments_weekly"))
    if metric == "quarantine_share":
        top = (", mostly ", Code(top_reason)) if top_reason else ()
        return (Code("quarantine"), " by reason", *top)
    if metric == "late_share":
        return (Code("ledger"), "'s rows_landed_late per landing_file")
    return (*rows_of_slice, " by bucket, surface and device_type")


def _burn(result: SloResult) -> float:
    burn = result.budget.burn if result.budget is not None else None
    return burn if burn is not None else result.budget_used


def _limit(result: SloResult) -> tuple[Inline, ...]:
    side = "at most" if result.direction == "max" else "at least"
    return (f"{side} ", Num(fmt.metric(result.metric, result.target), result.target))


def _slo(
    group: Sequence[tuple[date, SloResult]],
    days: int,
    top_error: Mapping | None,
    top_reason: str | None,
) -> Paragraph:
    bad = [(d, r) for d, r in group if is_violation(r)]
    worst_day, worst = (max if group[0][1].direction == "max" else min)(
        bad, key=lambda pair: pair[1].measured
    )
    slice_ = worst.slice or ALL_TRAFFIC
    value = Num(fmt.metric(worst.metric, worst.measured), worst.measured)
    if days == 1:
        finding: tuple[Inline | Num, ...] = (" is ", value, " against ", *_limit(worst))
    else:
        finding = (
            " missed its target (",
            *_limit(worst),
            f") on {len(bad)} of {days} days, worst ",
            value,
            f" on {worst_day.isoformat()}",
        )
    return Paragraph(
        (
            Code(worst.metric),
            " on ",
            Code(slice_),
            *finding,
            ": look at ",
            *_where_to_look(worst.metric, slice_, top_error, top_reason),
            ".",
        )
    )


def _anomaly(
    day: date, result: AnomalyResult, days: int, top_error: Mapping | None, top_reason: str | None
) -> Paragraph:
    slice_ = result.slice_moved_most or ALL_TRAFFIC
    when = "" if days == 1 else f" on {day.isoformat()}"
    return Paragraph(
        (
            Code(result.metric),
            f" on {ALL_TRAFFIC} was ",
            Num(fmt.metric(result.metric, result.value), result.value),
            f"{when}, {result.direction or 'out'}er than the expected ",
            Num(fmt.metric(result.metric, result.expected), result.expected),
            " (band ",
            Num(fmt.metric(result.metric, result.lower), result.lower),
            " to ",
            Num(fmt.metric(result.metric, result.upper), result.upper),
            ", z = ",
            Num(fmt.one_decimal(result.z_score), result.z_score),
            "); the slice that moved most is ",
            Code(slice_),
            ": look at ",
            *_where_to_look(result.metric, slice_, top_error, top_reason),
            ".",
        )
    )


def _srm(experiment_id: str, srm_p_value: float) -> Paragraph:
    return Paragraph(
        (
            Code("srm_p_value"),
            " on ",
            Code(f"experiment_id={experiment_id}"),
            " is ",
            Num(fmt.p_value(srm_p_value), srm_p_value),
            f" (below {SRM_ALERT_P}): its users are not split as configured; check the "
            "assignment before reading its lift in ",
            Code("experiments_weekly"),
            ".",
        )
    )


def recommendations(
    slos: Mapping[date, Sequence[SloResult]],
    anomalies: Mapping[date, Sequence[AnomalyResult]],
    *,
    top_error: Mapping | None = None,
    top_reason: str | None = None,
    buckets: Sequence[Mapping] = (),
) -> list[Paragraph]:
    """Missed SLOs first (most days missed, then the fastest error budget burn), then flagged
    anomalies in date order, then experiments with a sample-ratio mismatch (``buckets``: rows
    with experiment_id and srm_p_value); one paragraph saying so when there is nothing to act
    on."""
    days = max(len(slos), len(anomalies), 1)
    by_name: dict[str, list[tuple[date, SloResult]]] = {}
    for day in sorted(slos):
        for result in slos[day]:
            by_name.setdefault(result.name, []).append((day, result))
    missed = [group for group in by_name.values() if any(is_violation(r) for _, r in group)]
    missed.sort(
        key=lambda group: (
            -sum(is_violation(r) for _, r in group),
            -max(_burn(r) for _, r in group),
        )
    )
    found = [_slo(group, days, top_error, top_reason) for group in missed]
    found += [
        _anomaly(day, a, days, top_error, top_reason)
        for day in sorted(anomalies)
        for a in anomalies[day]
        if a.flagged
    ]
    mismatched = {
        row["experiment_id"]: row["srm_p_value"]
        for row in buckets
        if row.get("srm_p_value") is not None and row["srm_p_value"] < SRM_ALERT_P
    }
    found += [_srm(e, p) for e, p in sorted(mismatched.items())]
    return found or [NOTHING_TO_DO]
