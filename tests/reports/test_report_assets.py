"""The report assets through real Dagster runs over a generated week: the numbers a report shows
are the rollups' (read back from their Parquet), its health score follows the stated formula from
the SLO evaluation of the same lake, the Markdown is the materialisation's metadata, and the HTML
renders in headless Chromium with the expected numbers and its charts."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.partitions import daily_partitions, weekly_partitions
from pipelines.defs.reports.assets import REPORT_DAILY, REPORT_WEEKLY, build_report_asset
from pipelines.defs.resources import DuckDBResource, LakeResource, RollupsResource, SloResource
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.lib import pii
from pipelines.lib.ingest import IngestSettings, PiiKey, ingest_partition
from pipelines.lib.paths import daily_report_dir, quarantine_dir, weekly_report_dir
from pipelines.lib.reports.build import HTML_FILE, MARKDOWN_FILE
from pipelines.lib.reports.data import DAILY, WEEKLY
from pipelines.lib.reports.health import FORMULA, health, is_violation, week_score
from pipelines.lib.rollups.run import DAY, MODELS, WEEK, rollup_file
from pipelines.lib.sample import SampleConfig, generate
from pipelines.lib.slo.config import load_slo_config
from pipelines.lib.slo.evaluate import anomalies_for_day, evaluate_day
from pipelines.lib.storage import Lake
from tests.chromium import headless_chromium

MONDAY = date(2025, 6, 2)
WEEK_DAYS = [MONDAY + timedelta(days=n) for n in range(7)]
REPORT_DAY = WEEK_DAYS[-1]  # the trend then has the whole week before it
# Tight enough that the sample misses the latency and CTR targets: the report has violations to
# count and recommend.
SLO_YAML = """
latency_p95_ms: {default: 1, surfaces: {home: 2}}
latency_p99_ms: {default: 1000000}
error_rate_max: 0.5
ctr_min: 0.9
quarantine_share_max: 0.5
late_share_max: 0.5
allowed_bad_days_per_month: 3
anomaly: {}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("reports")
    root = str(base / "lake")
    generate(SampleConfig(start=MONDAY, days=7, requests_per_day=150, error_rate=0.03), root)
    lake = Lake(root)
    for day in [MONDAY - timedelta(days=1), *WEEK_DAYS]:  # the eve: a week's first requests
        ingest_partition(lake, day, PiiKey(pii.DEV_KEY), IngestSettings())
    slo_file = base / "slo.yaml"
    slo_file.write_text(SLO_YAML)
    resources = {
        "lake": LakeResource(root=root),
        "rollups": RollupsResource(),
        "duckdb": DuckDBResource(memory_limit="1GB"),
        "slo": SloResource(path=str(slo_file)),
    }
    daily = [build_rollup_asset(m, daily_partitions()) for m in MODELS if m.grain == DAY]
    weekly = [build_rollup_asset(m, weekly_partitions()) for m in MODELS if m.grain == WEEK]
    for day in WEEK_DAYS:
        assert dg.materialize(daily, resources=resources, partition_key=day.isoformat()).success
    assert dg.materialize(weekly, resources=resources, partition_key=MONDAY.isoformat()).success
    results = {
        DAILY: dg.materialize(
            [build_report_asset(DAILY, daily_partitions())],
            resources=resources,
            partition_key=REPORT_DAY.isoformat(),
        ),
        WEEKLY: dg.materialize(
            [build_report_asset(WEEKLY, weekly_partitions())],
            resources=resources,
            partition_key=MONDAY.isoformat(),
        ),
    }
    folders = {DAILY: daily_report_dir(REPORT_DAY), WEEKLY: weekly_report_dir(MONDAY)}
    return {
        "lake": lake,
        "config": load_slo_config(slo_file),
        "results": results,
        "html": {k: Path(lake.path(f"{f}/{HTML_FILE}")) for k, f in folders.items()},
        "markdown": {k: Path(lake.path(f"{f}/{MARKDOWN_FILE}")) for k, f in folders.items()},
    }


class Numbers(HTMLParser):
    """Every number the page marks with data-key: its exact value and the text shown."""

    def __init__(self, html: str):
        super().__init__()
        self.found: dict[str, tuple[str | None, str]] = {}
        self.svgs = 0
        self._open: tuple[str, str | None] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.svgs += tag == "svg"
        if "data-key" in attributes:
            self._open = (attributes["data-key"], attributes.get("data-value"))
            self.found[self._open[0]] = (self._open[1], "")

    def handle_data(self, data):
        if self._open is not None:
            self.found[self._open[0]] = (self._open[1], data)
            self._open = None

    def value(self, key: str) -> float:
        return float(self.found[key][0])

    def text(self, key: str) -> str:
        return self.found[key][1]


def _rollup(lake: Lake, name: str, grain: str, start: date) -> list[dict]:
    return pq.read_table(lake.path(rollup_file(name, grain, start))).to_pylist()


def _all_traffic(lake: Lake, name: str, grain: str, start: date) -> dict:
    [row] = [r for r in _rollup(lake, name, grain, start) if r["is_all_traffic"]]
    return row


def _quarantined(lake: Lake, days: list[date]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for day in days:
        for row in pq.read_table(
            lake.path(f"{quarantine_dir(day)}/part-00000.parquet")
        ).to_pylist():
            counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return counts


def _errors(lake: Lake, days: list[date]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for day in days:
        for row in _rollup(lake, "errors_daily", DAY, day):
            key = f"errors/{row['component']}/{row['severity']}/{row['error_code']}"
            counts[key] = counts.get(key, 0) + row["errors"]
    return counts


def _check_headline(numbers: Numbers, row: dict) -> None:
    for name in ("requests", "impressions", "clicks", "errors", "distinct_users"):
        assert numbers.value(name) == row[name], name
        assert numbers.text(name) == str(row[name]), name
    for name in ("ctr", "error_rate"):
        assert numbers.value(name) == row[name], name
        assert numbers.text(name) == f"{100 * row[name]:.2f}%", name
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        assert numbers.value(name) == row[name], name
        assert numbers.text(name) == f"{row[name]:.1f} ms", name


def test_reports_are_written_as_markdown_and_html_and_the_markdown_is_the_metadata(built):
    for kind, result in built["results"].items():
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        markdown = built["markdown"][kind].read_text(encoding="utf-8")
        assert metadata["report"].value == markdown
        assert isinstance(metadata["report"], dg.MarkdownMetadataValue)
        numbers = Numbers(built["html"][kind].read_text(encoding="utf-8"))
        assert metadata["health_score"].value == numbers.value("health_score")
        assert f"Health score: {numbers.text('health_score')} / 100" in markdown
        assert FORMULA in markdown
        assert sorted(os.listdir(built["html"][kind].parent)) == [HTML_FILE, MARKDOWN_FILE]
    keys = {
        e.asset_key.to_user_string()
        for r in built["results"].values()
        for e in r.get_asset_materialization_events()
    }
    assert keys == {REPORT_DAILY, REPORT_WEEKLY}


def test_daily_report_numbers_equal_the_rollups(built):
    lake = built["lake"]
    numbers = Numbers(built["html"][DAILY].read_text(encoding="utf-8"))
    _check_headline(numbers, _all_traffic(lake, "traffic_daily", DAY, REPORT_DAY))
    # The trend: every day of the week so far, as traffic_daily has it.
    for day in WEEK_DAYS:
        p95 = _all_traffic(lake, "traffic_daily", DAY, day)["latency_p95_ms"]
        assert numbers.value(f"latency_p95_ms/{day}") == p95, day
    # CTR per bucket: traffic_daily's rows of the bucket, summed over surface and device.
    sums: dict[str, list[int]] = {}
    for row in _rollup(lake, "traffic_daily", DAY, REPORT_DAY):
        if not row["is_all_traffic"] and row["experiment_id"] is not None:
            key = f"ctr/{row['experiment_id']}/{row['bucket']}"
            sums.setdefault(key, [0, 0])
            sums[key][0] += row["clicks"]
            sums[key][1] += row["impressions"]
    assert sums, "the sample has experiment traffic"
    for key, (clicks, impressions) in sums.items():
        assert numbers.value(key) == clicks / impressions, key
        assert numbers.text(key) == f"{100 * clicks / impressions:.2f}%", key
    errors = _errors(lake, [REPORT_DAY])
    assert errors
    assert {k: int(numbers.value(k)) for k in numbers.found if k.startswith("errors/")} == errors
    quarantined = {
        k.removeprefix("quarantine/"): int(numbers.value(k))
        for k in numbers.found
        if k.startswith("quarantine/")
    }
    assert quarantined == _quarantined(lake, [REPORT_DAY])


def test_daily_health_score_and_recommendations_follow_the_slo_evaluation(built):
    lake, config = built["lake"], built["config"]
    slos = evaluate_day(lake, REPORT_DAY, config)
    flagged = sum(a.flagged for a in anomalies_for_day(lake, REPORT_DAY, config))
    violated = [r for r in slos if is_violation(r)]
    assert violated, "the test's SLO file is tight enough to be missed"
    error_rate = _all_traffic(lake, "traffic_daily", DAY, REPORT_DAY)["error_rate"]
    expected = health(len(violated), flagged, error_rate).score
    numbers = Numbers(built["html"][DAILY].read_text(encoding="utf-8"))
    assert numbers.value("health_score") == expected
    for r in slos:
        if r.measured is not None:
            assert numbers.value(f"slo/{r.name}") == r.measured, r.name
    markdown = built["markdown"][DAILY].read_text(encoding="utf-8")
    recommended = markdown.split("## Recommendations")[1].split("##")[0]
    for r in violated:
        assert f"`{r.metric}` on `{r.slice or 'all traffic'}` is " in recommended, r.name


def test_weekly_report_numbers_equal_the_rollups(built):
    lake, config = built["lake"], built["config"]
    numbers = Numbers(built["html"][WEEKLY].read_text(encoding="utf-8"))
    week = _all_traffic(lake, "traffic_weekly", WEEK, MONDAY)
    _check_headline(numbers, week)
    for name in ("requests", "ctr", "latency_p95_ms"):
        change = week[f"{name}_change"]  # null: the sample has no week before
        assert numbers.found[f"{name}_change"][0] == (None if change is None else repr(change))
    experiments = _rollup(lake, "experiments_weekly", WEEK, MONDAY)
    assert experiments
    for row in experiments:
        key = f"ctr/{row['experiment_id']}/{row['bucket']}"
        assert numbers.value(key) == row["ctr"], key
        assert numbers.text(key) == f"{100 * row['ctr']:.2f}%", key
    html = built["html"][WEEKLY].read_text(encoding="utf-8")
    for row in experiments:
        low, high = row["ctr_ci_low"], row["ctr_ci_high"]
        assert f"[{100 * low:.2f}%, {100 * high:.2f}%]" in html
    for day in WEEK_DAYS:
        p95 = _all_traffic(lake, "traffic_daily", DAY, day)["latency_p95_ms"]
        assert numbers.value(f"latency_p95_ms/{day}") == p95, day
    errors = _errors(lake, WEEK_DAYS)
    assert {k: int(numbers.value(k)) for k in numbers.found if k.startswith("errors/")} == errors
    quarantined = {
        k.removeprefix("quarantine/"): int(numbers.value(k))
        for k in numbers.found
        if k.startswith("quarantine/")
    }
    assert quarantined == _quarantined(lake, WEEK_DAYS)
    # The week's health: the mean of its days' scores, each by the formula.
    days = []
    for day in WEEK_DAYS:
        violated = sum(is_violation(r) for r in evaluate_day(lake, day, config))
        flagged = sum(a.flagged for a in anomalies_for_day(lake, day, config))
        rate = _all_traffic(lake, "traffic_daily", DAY, day)["error_rate"]
        days.append(health(violated, flagged, rate))
        assert numbers.value(f"health_score/{day}") == days[-1].score, day
    assert numbers.value("health_score") == week_score(days)


@pytest.mark.ui
@pytest.mark.parametrize("kind", [DAILY, WEEKLY])
def test_report_renders_in_headless_chromium_with_its_numbers_and_charts(built, kind, tmp_path):
    browser = headless_chromium(tmp_path / "profile")
    page = built["html"][kind]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    shown = Numbers(dom)
    lake = built["lake"]
    row = (
        _all_traffic(lake, "traffic_daily", DAY, REPORT_DAY)
        if kind == DAILY
        else _all_traffic(lake, "traffic_weekly", WEEK, MONDAY)
    )
    assert shown.text("requests") == str(row["requests"])
    assert shown.text("ctr") == f"{100 * row['ctr']:.2f}%"
    assert shown.text("latency_p95_ms") == f"{row['latency_p95_ms']:.1f} ms"
    saved = Numbers(page.read_text(encoding="utf-8"))
    assert shown.text("health_score") == saved.text("health_score")
    assert shown.value("health_score") == saved.value("health_score")
    # Latency by day (and by hour), SLO budget, CTR intervals, errors, quarantine.
    assert shown.svgs == saved.svgs == (6 if kind == DAILY else 5)
    assert "no data" not in dom.split("Errors by code")[0]
