"""The reports' plain parts: the health score formula, the SVG charts (well-formed, escaped,
showing the values given), the recommendations, and both renderings of a document."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from datetime import date
from html import unescape
from html.parser import HTMLParser

import pytest

from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.reports import fmt, svg, textwidth
from pipelines.lib.reports.document import (
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
from pipelines.lib.reports.health import FORMULA, WEEK_FORMULA, day_health, health, week_score
from pipelines.lib.reports.recommend import NOTHING_TO_DO, recommendations
from pipelines.lib.reports.render import to_html, to_markdown
from pipelines.lib.sample.events import ERRORS
from pipelines.lib.slo.evaluate import AnomalyResult, SloResult
from tests import fonts
from tests.chromium import headless_chromium

SVG = "{http://www.w3.org/2000/svg}"
DAY = date(2025, 6, 2)
HOSTILE = "<script>alert(\"x\")</script> & 'quoted' ]]> `tick` | pipe"


def slo(
    name: str = "latency_p95_ms.surface=home",
    metric: str = "latency_p95_ms",
    slice_: str | None = "surface=home",
    measured: float | None = 412.0,
    target: float = 300.0,
    direction: str = "max",
    ok: bool | None = None,
    budget_used: float = 0.5,
) -> SloResult:
    if ok is None:
        ok = measured is None or (measured <= target if direction == "max" else measured >= target)
    return SloResult(name, metric, slice_, measured, target, direction, ok, budget_used)


def anomaly(flagged: bool = True, metric: str = "requests", **fields) -> AnomalyResult:
    values = dict(
        value=2600.0,
        expected=2000.0,
        lower=1800.0,
        upper=2200.0,
        z_score=9.0,
        direction="high" if flagged else None,
        slice_moved_most="surface=search",
        history_days=28,
    )
    values.update(fields)
    return AnomalyResult(metric=metric, flagged=flagged, **values)


# The health score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("violations", "anomalies", "expected"),
    [
        (0, 0, 100.0),  # a clean day
        (1, 0, 85.0),  # 15 per SLO violated
        (0, 2, 80.0),  # 10 per anomaly flagged
        (2, 1, 60.0),  # 100 - 30 - 10
        (5, 3, 0.0),  # floored at 0
    ],
)
def test_health_score_follows_its_formula(violations, anomalies, expected):
    assert health(violations, anomalies).score == expected


def test_a_within_slo_error_rate_costs_no_points():
    """The issue's day: 1.3% errors under a 2% ceiling cost 13 points; it is what the SLO
    allows, so it costs nothing."""
    within = slo(name="error_rate", metric="error_rate", slice_=None, measured=0.013, target=0.02)
    assert within.ok
    found = day_health([within], [anomaly(flagged=False)])
    assert (found.score, found.slo_points, found.anomaly_points) == (100.0, 0.0, 0.0)


def test_an_error_rate_over_its_ceiling_costs_one_violation_whatever_its_size():
    for rate in (0.021, 0.5):
        over = slo(name="error_rate", metric="error_rate", slice_=None, measured=rate, target=0.02)
        assert day_health([over], []).score == 100 - 15


def test_health_counts_violations_with_data_and_flagged_anomalies_only():
    results = [
        slo(),  # 412 > 300: violated
        slo(name="ctr", metric="ctr", slice_=None, measured=0.05, target=0.02, direction="min"),
        slo(name="late_share", metric="late_share", measured=None, target=0.05, ok=False),
    ]
    not_judged = anomaly(flagged=False, expected=None, lower=None, upper=None, z_score=None)
    found = day_health(results, [anomaly(), anomaly(flagged=False), not_judged])
    assert (found.slo_violations, found.anomalies) == (1, 1)
    assert found.score == 100 - 15 - 10


def test_health_rejects_negative_inputs_and_states_its_formula():
    with pytest.raises(ValueError, match="negative"):
        health(-1, 0)
    for term in ("100", "15 × SLOs violated", "10 × anomalies flagged", "max(0"):
        assert term in FORMULA
    assert "error rate" not in FORMULA


def test_the_report_docs_state_the_formula_the_reports_print():
    page = (PROJECT_ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
    assert FORMULA in page and WEEK_FORMULA in page
    assert "7 days" in page and "min_history" in page  # the history a band needs
    assert "TELEMETRY_DAGSTER_URL" in page


def test_week_score_is_the_mean_of_its_days():
    days = [health(0, 0), health(1, 0), health(0, 1)]
    assert week_score(days) == round((100 + 85 + 90) / 3, 1) == 91.7
    with pytest.raises(ValueError):
        week_score([])


# Number formatting ------------------------------------------------------------------------------


def test_metrics_are_formatted_by_the_unit_in_their_name():
    assert fmt.metric("latency_p95_ms", 412.04) == "412.0 ms"
    assert fmt.metric("ctr", 0.051234) == "5.12%"
    assert fmt.metric("error_rate", 0.02) == "2.00%"
    assert fmt.metric("quarantine_share", 0.00125) == "0.12%"  # ties to even
    assert fmt.metric("requests", 1234.0) == "1234"
    assert fmt.metric("ctr", None) == fmt.MISSING
    assert fmt.interval(0.01, 0.02) == "[1.00%, 2.00%]"
    assert fmt.signed_percent(-0.031) == "-3.10%"


# SVG charts -------------------------------------------------------------------------------------


def _parse(chart: str) -> ET.Element:
    root = ET.fromstring(chart)  # raises on anything not well-formed
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter() if el.tag in (f"{SVG}text", f"{SVG}title")]


def test_line_chart_is_well_formed_and_draws_every_point():
    chart = svg.line_chart(
        "Latency",
        ["06-01", "06-02", "06-03"],
        [svg.Series("p95", [120.0, None, 140.5]), svg.Series("p99", [300.0, 310.0, 320.0])],
        lambda v: f"{v:g}",
        fmt.ms,
    )
    root = _parse(chart)
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 5  # the gap draws no point
    tips = [c.find(f"{SVG}title").text for c in circles]
    assert "06-03 p95: 140.5 ms" in tips
    # The gap splits p95's line: two single points, no polyline; p99 is one line.
    assert len(root.findall(f".//{SVG}polyline")) == 1


def test_bar_chart_prints_the_values_and_marks_bad_bars():
    bars = [svg.Bar("a", 0.5, "50.00%"), svg.Bar("b", 1.4, "140.00%", bad=True)]
    root = _parse(svg.bar_chart("Budget", bars, reference=1.0, reference_label="100%"))
    assert {"50.00%", "140.00%", "100%"} <= set(_texts(root))
    fills = [r.get("fill") for r in root.findall(f".//{SVG}rect")]
    assert fills == [svg.PALETTE[0], svg.BAD]
    widths = [float(r.get("width")) for r in root.findall(f".//{SVG}rect")]
    assert widths[1] / widths[0] == pytest.approx(1.4 / 0.5, rel=1e-2)


def test_interval_chart_draws_whiskers_around_points():
    items = [
        svg.Interval("exp / control", 0.05, 0.04, 0.06, "5.00%"),
        svg.Interval("exp / treatment", None, None, None, "–"),
    ]
    root = _parse(svg.interval_chart("CTR", items, fmt.percent))
    [line] = [el for el in root.findall(f".//{SVG}line") if el.get("stroke-width") == "2"]
    [point] = root.findall(f".//{SVG}circle")
    assert float(line.get("x1")) < float(point.get("cx")) < float(line.get("x2"))


def test_charts_escape_every_text_and_survive_no_data():
    charts = [
        svg.line_chart(HOSTILE, [HOSTILE], [svg.Series(HOSTILE, [1.0])], str, str),
        svg.bar_chart(HOSTILE, [svg.Bar(HOSTILE, 1.0, HOSTILE)], 2.0, HOSTILE),
        svg.interval_chart(HOSTILE, [svg.Interval(HOSTILE, 1.0, 0.5, 1.5, HOSTILE)], str),
        svg.bar_chart(HOSTILE, []),
        svg.line_chart("empty", [], [], str, str),
    ]
    for chart in charts:
        root = _parse(chart)
        assert "<script" not in chart
        assert not root.findall(f".//{SVG}script")
        assert HOSTILE in _texts(root) or "no data" in _texts(root)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 412, [0, 100, 200, 300, 400, 500]), (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (5, 5, None)],
)
def test_nice_ticks_cover_the_range_in_round_steps(low, high, expected):
    ticks = svg.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    if expected is not None:
        assert ticks == pytest.approx(expected)


# Labels are never clipped -----------------------------------------------------------------------

# The real labels of the charts: the sample's error codes as the errors chart prints them, every
# quarantine reason, the SLO chart's metric and slice, experiment buckets.
ERROR_LABELS = [f"{component} {code} ({severity})" for component, code, severity, *_ in ERRORS]
SLO_LABELS = [
    f"{metric} {slice_}"
    for metric in ("latency_p95_ms", "latency_p99_ms", "quarantine_share", "error_rate")
    for slice_ in ("surface=category", "all traffic")
]
LONG = "feature-store FEATURE_MISSING (critical) / a label far longer than any margin " * 2


def _label_charts() -> dict[str, str]:
    def bars(labels: list[str]) -> list[svg.Bar]:
        return [svg.Bar(label, 10.0 * (n + 1), f"{10 * (n + 1)}") for n, label in enumerate(labels)]

    return {
        "errors": svg.bar_chart("Errors per code (top 10)", bars(ERROR_LABELS)),
        "quarantine": svg.bar_chart("Quarantined lines per reason", bars(list(REASONS))),
        "slo": svg.bar_chart(
            "Error budget burn vs the month-to-date pace, to 2025-06-08",
            [svg.Bar(label, 0.65, "0.65x") for label in SLO_LABELS] + [svg.Bar("x", 3.0, "3.00x")],
            reference=1.0,
            reference_label="1.00x: on pace",
        ),
        "intervals": svg.interval_chart(
            "CTR by experiment / bucket, with its 95% interval",
            [
                svg.Interval("exp-ranker-v2 / treatment", 0.05, 0.04, 0.06, "5.00%"),
                svg.Interval("exp-diversity / control", 0.031, 0.02, 0.042, "3.10%"),
            ],
            fmt.percent,
        ),
        "long": svg.bar_chart(LONG, [svg.Bar(LONG, 1.0, LONG)]),
        "line": svg.line_chart(
            "Requests per day",
            ["2025-06-01", "2025-06-02", "2025-06-03"],
            [svg.Series("requests with a long name", [1_234_567.0, 2_345_678.0, 3_456_789.0])],
            lambda v: f"{v:,.0f}",
            str,
        ),
    }


def test_the_real_labels_needed_more_than_the_old_fixed_margin():
    # The errors chart had 220 px for its labels (6 of them a gap): the clipped label.
    measure = fonts.widest()
    assert measure("feature-store FEATURE_MISSING (warning)", svg.FONT_SIZE) > 214
    assert max(measure(label, svg.FONT_SIZE) for label in ERROR_LABELS) > 214


@pytest.mark.parametrize("name", list(_label_charts()))
def test_no_chart_text_reaches_outside_the_chart(name):
    """Every text's extent, from its x and anchor and its width in the widest installed chart
    font (read from the font files, not from the project's width table), lies within the
    chart's viewBox."""
    chart = _label_charts()[name]
    _parse(chart)
    assert fonts.clipped_texts(chart) == []


def test_a_label_never_overlaps_its_bar():
    root = _parse(_label_charts()["errors"])
    [first_bar, *_] = root.findall(f".//{SVG}rect")
    measure = fonts.widest()
    for text in root.findall(f".//{SVG}text"):
        if text.get("text-anchor") == "end":  # a row label, right-aligned before the bars
            assert float(text.get("x")) <= float(first_bar.get("x"))
            assert float(text.get("x")) - measure(text.text, svg.FONT_SIZE) >= 0


def test_charts_keep_their_width_unless_the_text_needs_more():
    short = svg.bar_chart("Budget", [svg.Bar("a", 1.0, "1")])
    assert _parse(short).get("width") == str(svg.WIDTH)
    long = _parse(_label_charts()["long"])
    assert float(long.get("width")) > svg.WIDTH


def test_the_width_table_is_an_upper_bound_of_every_installed_chart_font():
    for bold, table in ((False, textwidth.REGULAR), (True, textwidth.BOLD)):
        found = fonts.installed(bold)
        if not found:
            pytest.skip("none of the charts' fonts installed")
        for font in found:
            for char, width in table.items():
                advance = font.advance(char)
                if advance is not None:
                    assert width >= 1000 * advance - 1e-9, (font.path.name, char)
    assert textwidth.text_width("\u4e2d", 10) == 10.0  # unknown: a full em


@pytest.mark.ui
def test_chromium_draws_every_chart_text_inside_its_chart(tmp_path):
    """The browser's own measure: each <text>'s bounding box as Chromium lays it out, with the
    fonts it resolves, within the SVG's viewBox."""
    charts = "".join(f"<figure>{chart}</figure>" for chart in _label_charts().values())
    page = tmp_path / "charts.html"
    page.write_text(
        "<!DOCTYPE html><html><body>" + charts + '<pre id="out"></pre><script>'
        "const rows = [];"
        "for (const svg of document.querySelectorAll('svg')) {"
        "  const width = svg.viewBox.baseVal.width;"
        "  for (const t of svg.querySelectorAll('text')) {"
        "    const box = t.getBBox();"
        "    rows.push([box.x, box.x + box.width, width, t.textContent].join('\\t'));"
        "  }"
        "}"
        "document.getElementById('out').textContent = rows.join('\\n');"
        "</script></body></html>",
        encoding="utf-8",
    )
    dom = subprocess.run(
        [*headless_chromium(tmp_path / "profile"), "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    out = dom.split('<pre id="out">')[1].split("</pre>")[0]
    rows = [line.split("\t", 3) for line in unescape(out).splitlines()]
    assert len(rows) > 40, "every text was measured"
    clipped = [r for r in rows if float(r[0]) < 0 or float(r[1]) > float(r[2])]
    assert clipped == []


# Recommendations --------------------------------------------------------------------------------


def test_a_missed_slo_names_metric_slice_values_and_where_to_look():
    [found] = recommendations({DAY: [slo(), slo(name="ctr", metric="ctr", slice_=None,
                                                  measured=0.05, target=0.02, direction="min")]},
                              {DAY: []})  # fmt: skip
    text = found.plain()
    assert text.startswith("latency_p95_ms on surface=home is 412.0 ms against at most 300.0 ms")
    assert "traffic_hourly" in text and "traffic_daily's rows of surface=home" in text
    assert Code("latency_p95_ms") in found.parts and Code("surface=home") in found.parts


def test_error_and_quarantine_recommendations_name_the_top_code_and_reason():
    results = [
        slo(name="error_rate", metric="error_rate", slice_=None, measured=0.03, target=0.02),
        slo(name="quarantine_share", metric="quarantine_share", slice_=None, measured=0.02,
            target=0.01),
    ]  # fmt: skip
    found = recommendations(
        {DAY: results},
        {DAY: []},
        top_error={"component": "ranker", "error_code": "TIMEOUT"},
        top_reason="schema_violation",
    )
    texts = [p.plain() for p in found]
    assert any(
        t.startswith("error_rate on all traffic is 3.00% against at most 2.00%")
        and "ranker/TIMEOUT" in t
        for t in texts
    )
    assert any("quarantine_share" in t and "mostly schema_violation" in t for t in texts)


def test_week_recommendations_count_the_days_missed_and_the_worst():
    week = {
        date(2025, 6, 2): [slo(measured=250.0)],
        date(2025, 6, 3): [slo(measured=412.0)],
        date(2025, 6, 4): [slo(measured=350.0)],
    }
    [found] = recommendations(week, {d: [] for d in week})
    assert "missed its target (at most 300.0 ms) on 2 of 3 days, worst 412.0 ms on 2025-06-03" in (
        found.plain()
    )


def test_anomalies_and_sample_ratio_mismatch_are_recommended():
    found = recommendations(
        {DAY: [slo(measured=200.0)]},
        {DAY: [anomaly(), anomaly(flagged=False, metric="ctr")]},
        buckets=[
            {"experiment_id": "exp-a", "bucket": "control", "srm_p_value": 1e-6},
            {"experiment_id": "exp-a", "bucket": "treatment", "srm_p_value": 1e-6},
            {"experiment_id": "exp-b", "bucket": "control", "srm_p_value": 0.4},
        ],
    )
    texts = [p.plain() for p in found]
    assert len(texts) == 2
    assert texts[0].startswith("requests on all traffic was 2600, higher than the expected 2000")
    assert "the slice that moved most is surface=search" in texts[0]
    assert texts[1].startswith("srm_p_value on experiment_id=exp-a is 0.0000")


def test_nothing_to_act_on_says_so():
    assert recommendations({DAY: [slo(measured=100.0)]}, {DAY: [anomaly(False)]}) == [NOTHING_TO_DO]


# Rendering --------------------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.nums: dict[str, tuple[str, str]] = {}
        self._key: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        if "data-key" in attributes:
            self._key = (attributes["data-key"], attributes.get("data-value"))

    def handle_data(self, data):
        self.text.append(data)
        if self._key is not None:
            self.nums[self._key[0]] = (self._key[1], data)
            self._key = None


def _hostile_document() -> Document:
    return Document(
        f"Report {HOSTILE}",
        (
            Section(
                HOSTILE,
                (
                    Paragraph(("score ", Num("87.7", 87.7, "health_score"), " ", Code(HOSTILE))),
                    Items((Paragraph((Code(HOSTILE), " is high")),)),
                    Table(("what", "value"), ((Code(HOSTILE), Num("12", 12, HOSTILE)),)),
                    Table(("what",), (), empty="nothing here"),
                    Chart(svg.bar_chart(HOSTILE, [svg.Bar(HOSTILE, 1.0, "1")])),
                ),
            ),
        ),
    )


def test_html_is_self_contained_escaped_and_carries_exact_values():
    html = to_html(_hostile_document())
    collected = _Collect()
    collected.feed(html)
    assert "script" not in collected.tags
    assert not {"link", "img", "iframe", "object"} & set(collected.tags)
    assert "default-src 'none'" in html
    assert collected.nums["health_score"] == ("87.7", "87.7")
    assert collected.nums[HOSTILE] == ("12", "12")
    assert "".join(collected.text).count(HOSTILE) >= 4
    assert "nothing here" in "".join(collected.text)
    [svg_part] = [html[html.index("<svg") : html.index("</svg>") + 6]]
    _parse(svg_part)


def test_markdown_keeps_data_literal_and_leaves_charts_out():
    text = to_markdown(_hostile_document())
    assert text.startswith(f"# Report {HOSTILE}\n")
    assert "<svg" not in text
    assert "1. `` " in text  # data is a code span, never markup
    assert "| `` <script>alert(\"x\")</script> & 'quoted' ]]> `tick` \\| pipe `` | 12 |" in text
    assert "_nothing here_" in text


def test_links_render_in_both_and_only_to_http():
    rel = "rollups/traffic_daily/event_date=2025-06-02"
    url = 'https://dagster.example.com/runs/1234"><script>|)'
    doc = Document("t", (Section("s", (Items((Paragraph((Link(rel, url),)),)),)),))
    markdown = to_markdown(doc)
    assert (
        f"1. [`{rel}`](https://dagster.example.com/runs/1234%22%3E%3Cscript%3E%7C%29)" in markdown
    )
    html = to_html(doc)
    assert (
        f'<a href="https://dagster.example.com/runs/1234%22%3E%3Cscript%3E%7C%29"><code>{rel}</code>'
        in html
    )
    collected = _Collect()
    collected.feed(html)
    assert "script" not in collected.tags
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "/runs/x"):
        with pytest.raises(ValueError, match="http"):
            Link(rel, bad)
