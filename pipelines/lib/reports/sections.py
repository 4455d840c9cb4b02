"""The report's layout: ReportData -> Document. Every number goes through fmt.py, so a value
appears with one rounding in the summary, the tables and the charts' labels."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from pipelines.lib.reports import fmt, svg
from pipelines.lib.reports.data import DAILY, TREND_DAYS, ReportData, Source
from pipelines.lib.reports.document import (
    Block,
    Cell,
    Chart,
    Code,
    Document,
    Items,
    Link,
    Num,
    Paragraph,
    Section,
    Table,
)
from pipelines.lib.reports.health import FORMULA, WEEK_FORMULA, is_violation
from pipelines.lib.reports.recommend import ALL_TRAFFIC, recommendations
from pipelines.lib.slo.anomaly import BandSettings
from pipelines.lib.slo.evaluate import RATE, AnomalyResult, SloResult

HEADLINE = (
    "requests",
    "impressions",
    "clicks",
    "ctr",
    "errors",
    "error_rate",
    "distinct_users",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
PERCENTILES = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
TOP_ERROR_CODES = 10  # charted; the table lists every code


def _num(name: str, value: Any, key: str | None = None) -> Num:
    return Num(fmt.metric(name, value), value, key)


def _title(data: ReportData) -> str:
    if data.kind == DAILY:
        return f"Daily report: {data.start.isoformat()}"
    return f"Weekly report: {data.start.isoformat()} to {data.end.isoformat()}"


def _summary(data: ReportData) -> Section:
    score = Paragraph(
        ("Health score: ", Num(fmt.one_decimal(data.score), data.score, "health_score"), " / 100")
    )
    blocks: list[Block] = [score, Paragraph((FORMULA,))]
    if data.kind == DAILY:
        [health] = data.health.values()
        deductions = (
            ("SLOs violated", health.slo_violations, health.slo_points, "slo_violations"),
            ("anomalies flagged", health.anomalies, health.anomaly_points, "anomalies"),
        )
        blocks.append(
            Table(
                ("deduction", "count", "points"),
                tuple(
                    (what, Num(fmt.count(n), n), Num(fmt.one_decimal(p), p, f"points/{key}"))
                    for what, n, p, key in deductions
                ),
            )
        )
    else:
        blocks.append(Paragraph((WEEK_FORMULA,)))
        blocks.append(
            Table(
                ("day", "SLOs violated", "anomalies flagged", "health"),
                tuple(
                    (
                        d.isoformat(),
                        Num(str(h.slo_violations), h.slo_violations),
                        Num(str(h.anomalies), h.anomalies),
                        Num(fmt.one_decimal(h.score), h.score, f"health_score/{d.isoformat()}"),
                    )
                    for d, h in sorted(data.health.items())
                ),
            )
        )
    header = ("metric", "value")
    if data.changes:
        header = (*header, "change vs previous week")
    rows = []
    for name in HEADLINE:
        row: tuple[Cell, ...] = (Code(name), _num(name, data.headline[name], name))
        if data.changes:
            change = data.changes.get(f"{name}_change")
            row = (*row, Num(fmt.signed_percent(change), change, f"{name}_change"))
        rows.append(row)
    blocks.append(Paragraph(("All traffic of the period:",)))
    blocks.append(Table(header, tuple(rows)))
    return Section("Summary", tuple(blocks))


def _recommendations(data: ReportData) -> Section:
    found = recommendations(
        data.slos,
        data.anomalies,
        top_error=data.errors[0] if data.errors else None,
        top_reason=data.quarantine[0]["reason"] if data.quarantine else None,
        buckets=[] if data.kind == DAILY else data.buckets,
    )
    return Section("Recommendations", (Items(tuple(found)),))


def _target(result: SloResult) -> str:
    side = "≤" if result.direction == "max" else "≥"
    return f"{side} {fmt.metric(result.metric, result.target)}"


def _status(result: SloResult) -> str:
    if result.measured is None:
        return "no data"
    return "VIOLATED" if is_violation(result) else "met"


# What a rate SLO's bad events are, in "1.30% errors vs 2.00% ceiling".
_BAD_EVENTS = {"error_rate": "errors", "quarantine_share": "quarantined", "late_share": "late"}
BURN_RULE = (
    "Error budget burn is what the month has spent from its 1st through the day against what "
    "its pace allows by then, the pace that spends exactly the month's budget by its last day. "
    "For a rate ceiling it is the month-to-date rate / the ceiling (bad events / (ceiling × "
    "events)); for a per-day target, the days missed / (allowed bad days × days elapsed / days "
    "in the month). Below 1.00x the month is within its budget; above it, it is spending faster "
    "than the budget lasts."
)


def _month_to_date(result: SloResult) -> str:
    budget = result.budget
    if budget is None:
        return fmt.MISSING
    if budget.kind == RATE:
        rate = budget.month_to_date
        if rate is None:
            return "no data this month"
        noun = _BAD_EVENTS.get(result.metric, "bad")
        return f"{fmt.percent(rate)} {noun} vs {fmt.percent(budget.ceiling)} ceiling"
    return (
        f"{fmt.count(int(budget.spent))} of {budget.allowed_days} allowed bad days "
        f"(pace: {budget.pace:.1f} by day {budget.days_elapsed} of {budget.days_in_month})"
    )


def _burn(result: SloResult) -> float | None:
    return result.budget.burn if result.budget is not None else None


def _burn_num(result: SloResult) -> Num:
    burn = _burn(result)
    text = fmt.MISSING if burn is None else f"{fmt.burn(burn)} of pace"
    return Num(text, burn, f"slo/{result.name}/burn")


def _slo_daily(results: Sequence[SloResult]) -> Table:
    return Table(
        ("SLO", "slice", "measured", "target", "status", "month to date", "budget burn"),
        tuple(
            (
                Code(r.metric),
                Code(r.slice or ALL_TRAFFIC),
                _num(r.metric, r.measured, f"slo/{r.name}"),
                _target(r),
                _status(r),
                _month_to_date(r),
                _burn_num(r),
            )
            for r in results
        ),
    )


def _slo_weekly(data: ReportData) -> Table:
    by_name: dict[str, list[SloResult]] = {}
    for day in sorted(data.slos):
        for r in data.slos[day]:
            by_name.setdefault(r.name, []).append(r)
    rows = []
    for name, results in by_name.items():
        measured = [r.measured for r in results if r.measured is not None]
        pick = max if results[0].direction == "max" else min
        worst = pick(measured) if measured else None
        last = results[-1]
        missed = sum(is_violation(r) for r in results)
        rows.append(
            (
                Code(last.metric),
                Code(last.slice or ALL_TRAFFIC),
                Num(f"{missed} of {len(results)}", missed, f"slo/{name}/days_missed"),
                _num(last.metric, worst, f"slo/{name}/worst"),
                _target(last),
                _month_to_date(last),
                _burn_num(last),
            )
        )
    last_day = max(data.slos).isoformat()
    return Table(
        (
            "SLO",
            "slice",
            "days missed",
            "worst day",
            "target",
            f"month to date ({last_day})",
            f"budget burn ({last_day})",
        ),
        tuple(rows),
    )


def _slo(data: ReportData) -> Section:
    last_day = max(data.slos)
    latest = data.slos[last_day]
    bars = []
    for r in latest:
        burn = _burn(r)
        bars.append(
            svg.Bar(
                f"{r.metric} {r.slice or ALL_TRAFFIC}",
                burn or 0.0,
                fmt.burn(burn),
                bad=(burn is not None and burn > 1) or is_violation(r),
            )
        )
    chart = svg.bar_chart(
        f"Error budget burn vs the month-to-date pace, to {last_day.isoformat()}",
        bars,
        reference=1.0,
        reference_label="1.00x: on pace",
    )
    table = _slo_daily(latest) if data.kind == DAILY else _slo_weekly(data)
    return Section("SLO status", (Chart(chart), Paragraph((BURN_RULE,)), table))


def _band(metric: str, lower: float | None, upper: float | None) -> str:
    if lower is None or upper is None:
        return fmt.MISSING
    return f"{fmt.metric(metric, lower)} to {fmt.metric(metric, upper)}"


def anomaly_rule(bands: BandSettings) -> str:
    return (
        f"Each watched metric's day is judged against the band its trailing {bands.window_days} "
        f"days predict (|z| above {bands.width:g} is flagged), once that window holds "
        f"{bands.min_history} usable days with a value, counted from the lake's first day with "
        "data; before that the day has no band and is not judged. A band is clamped to the "
        "values its metric can take: counts, latencies, CTR and the error rate never below 0, "
        "shares never above 100%."
    )


def _judged(a: AnomalyResult, bands: BandSettings) -> str:
    if a.flagged:
        return f"yes ({a.direction})"
    if a.expected is not None:
        return "no"
    if a.value is None:
        return "no value"
    return f"not judged (fewer than {bands.min_history} usable days)"


def _anomalies(data: ReportData) -> Section:
    daily = data.kind == DAILY
    shown = [
        (d, a) for d in sorted(data.anomalies) for a in data.anomalies[d] if daily or a.flagged
    ]
    header = ("metric", "value", "expected", "band", "z", "flagged", "slice moved most", "history")
    rows = tuple(
        (
            *(() if daily else (d.isoformat(),)),
            Code(a.metric),
            _num(a.metric, a.value, f"anomaly/{d.isoformat()}/{a.metric}"),
            _num(a.metric, a.expected),
            _band(a.metric, a.lower, a.upper),
            Num(fmt.one_decimal(a.z_score), a.z_score),
            _judged(a, data.bands),
            Code(a.slice_moved_most) if a.slice_moved_most else fmt.MISSING,
            Num(f"{a.history_days} days", a.history_days),
        )
        for d, a in shown
    )
    return Section(
        "Anomalies" if daily else "Anomalies flagged",
        (
            Paragraph((anomaly_rule(data.bands),)),
            Table(header if daily else ("day", *header), rows, empty="none flagged"),
        ),
    )


def _series_chart(
    title: str,
    axis: Sequence[Any],
    label: Callable[[Any], str],
    rows: dict[Any, dict],
    names: Sequence[str],
) -> Chart:
    """One line per column in ``names`` over every point of ``axis``: a point without a row (a
    day not built, an hour without events) is a gap, not a joined-up line."""
    series = [
        svg.Series(
            n.removeprefix("latency_").removesuffix("_ms"),
            [rows[x][n] if x in rows else None for x in axis],
        )
        for n in names
    ]
    labels = [label(x) for x in axis]
    return Chart(svg.line_chart(title, labels, series, lambda v: f"{v:g}", fmt.ms))


def _latency(data: ReportData) -> Section:
    daily = data.kind == DAILY
    span = f"the trailing {TREND_DAYS} days" if daily else "the week's days"
    first = data.end - timedelta(days=TREND_DAYS - 1) if daily else data.start
    days = data.days
    blocks: list[Block] = [
        _series_chart(
            f"Ranking latency p50 / p95 / p99 per day (ms), {span}",
            [first + timedelta(days=n) for n in range((data.end - first).days + 1)],
            lambda d: d.strftime("%m-%d"),
            {r["event_date"]: r for r in days},
            PERCENTILES,
        ),
        Table(
            ("day", "requests", "p50", "p95", "p99"),
            tuple(
                (
                    r["event_date"].isoformat(),
                    Num(fmt.count(r["requests"]), r["requests"]),
                    *(_num(p, r[p], f"{p}/{r['event_date'].isoformat()}") for p in PERCENTILES),
                )
                for r in days
            ),
        ),
    ]
    if daily:
        hours = data.hours
        blocks += [
            _series_chart(
                "Ranking latency p95 per UTC hour of the day (ms)",
                [datetime.combine(data.start, time(hour)) for hour in range(24)],
                lambda h: h.strftime("%H"),
                {r["hour_start"]: r for r in hours},
                ("latency_p95_ms",),
            ),
            Table(
                ("hour (UTC)", "requests", "errors", "p95"),
                tuple(
                    (
                        r["hour_start"].strftime("%H:00"),
                        Num(fmt.count(r["requests"]), r["requests"]),
                        Num(fmt.count(r["errors"]), r["errors"]),
                        _num("latency_p95_ms", r["latency_p95_ms"]),
                    )
                    for r in hours
                ),
            ),
        ]
    return Section("Latency", tuple(blocks))


def _bucket_label(row: dict) -> str:
    return f"{row['experiment_id']} / {row['bucket']}"


def _ctr(data: ReportData) -> Section:
    daily = data.kind == DAILY
    method = (
        "95% Wilson interval over the day's impressions (binomial: narrower than the weekly "
        "report's delta-method interval, as clicks cluster by request)."
        if daily
        else "95% delta-method interval over exposed requests, lift against control and "
        "sample-ratio test, as experiments_weekly stores them."
    )
    chart = svg.interval_chart(
        "CTR by experiment / bucket, with its 95% interval",
        [
            svg.Interval(
                _bucket_label(r), r["ctr"], r["ctr_ci_low"], r["ctr_ci_high"], fmt.percent(r["ctr"])
            )
            for r in data.buckets
        ],
        fmt.percent,
    )

    def key(row: dict) -> str:
        return f"ctr/{row['experiment_id']}/{row['bucket']}"

    def common(r: dict) -> tuple[Cell, ...]:
        return (
            Num(fmt.count(r["impressions"]), r["impressions"]),
            Num(fmt.count(r["clicks"]), r["clicks"]),
            Num(fmt.percent(r["ctr"]), r["ctr"], key(r)),
            fmt.interval(r["ctr_ci_low"], r["ctr_ci_high"]),
        )

    if daily:
        header: tuple[str, ...] = (
            "experiment",
            "bucket",
            "impressions",
            "clicks",
            "CTR",
            "95% interval",
        )
        rows = tuple(
            (Code(r["experiment_id"]), Code(r["bucket"]), *common(r)) for r in data.buckets
        )
    else:
        header = (
            "experiment",
            "bucket",
            "users",
            "exposed requests",
            "impressions",
            "clicks",
            "CTR",
            "95% interval",
            "lift vs control",
            "p-value",
            "SRM p-value",
        )
        rows = tuple(
            (
                Code(r["experiment_id"]),
                Code(r["bucket"]),
                Num(fmt.count(r["users_assigned"]), r["users_assigned"]),
                Num(fmt.count(r["requests"]), r["requests"]),
                *common(r),
                Num(fmt.signed_percent(r["lift_rel"]), r["lift_rel"]),
                Num(fmt.p_value(r["p_value"]), r["p_value"]),
                Num(fmt.p_value(r["srm_p_value"]), r["srm_p_value"]),
            )
            for r in data.buckets
        )
    return Section(
        "CTR by bucket",
        (Chart(chart), Paragraph((method,)), Table(header, rows, empty="no experiment traffic")),
    )


def _bars(title: str, rows: list[dict], label: Callable[[dict], str], column: str) -> Chart:
    bars = [svg.Bar(label(r), r[column], fmt.count(r[column])) for r in rows]
    return Chart(svg.bar_chart(title, bars))


def _errors(data: ReportData) -> Section:
    def label(r: dict) -> str:
        return f"{r['component']} {r['error_code']} ({r['severity']})"

    rows = tuple(
        (
            Code(r["component"]),
            Code(r["severity"]),
            Code(r["error_code"]),
            Num(
                fmt.count(r["errors"]),
                r["errors"],
                f"errors/{r['component']}/{r['severity']}/{r['error_code']}",
            ),
            Num(fmt.percent(r["error_share"]), r["error_share"]),
        )
        for r in data.errors
    )
    return Section(
        "Errors by code",
        (
            _bars(
                f"Errors per code (top {TOP_ERROR_CODES})",
                data.errors[:TOP_ERROR_CODES],
                label,
                "errors",
            ),
            Table(("component", "severity", "code", "errors", "share"), rows, empty="no errors"),
        ),
    )


def _quarantine(data: ReportData) -> Section:
    rows = tuple(
        (
            Code(r["reason"]),
            Num(fmt.count(r["line_count"]), r["line_count"], f"quarantine/{r['reason']}"),
        )
        for r in data.quarantine
    )
    return Section(
        "Quarantine by reason",
        (
            _bars(
                "Quarantined lines per reason", data.quarantine, lambda r: r["reason"], "line_count"
            ),
            Table(("reason", "lines"), rows, empty="nothing quarantined"),
        ),
    )


def _about(data: ReportData, run_links: Mapping[Source, str]) -> Section:
    blocks: list[Block] = [
        Paragraph((fmt.ROUNDING_RULE,)),
        Paragraph(("Read from the lake's ", Code("rollups/"), " and ", Code("quarantine/"), ":")),
        Items(
            tuple(
                Paragraph((Link(s.rel, run_links[s]),) if s in run_links else (Code(s.rel),))
                for s in data.sources
            )
        ),
    ]
    if run_links:
        blocks.append(Paragraph(("Each linked partition opens the Dagster run that wrote it.",)))
    return Section("About these numbers", tuple(blocks))


def document(data: ReportData, run_links: Mapping[Source, str] | None = None) -> Document:
    """The report of ``data``; ``run_links`` maps a source partition to the URL of the Dagster
    run that wrote it (none: the partitions are listed without links)."""
    return Document(
        _title(data),
        (
            _summary(data),
            _recommendations(data),
            _slo(data),
            _anomalies(data),
            _latency(data),
            _ctr(data),
            _errors(data),
            _quarantine(data),
            _about(data, run_links or {}),
        ),
    )
