"""A report's numbers: read from the rollups with the SQL in ``sql/reports/`` (values as they are
stored, never recomputed from events), the SLO results and anomalies of each day from
``lib/slo/evaluate.py``, and the health score from both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lib.lake.calendar import days_between
from pipelines.lib.lake.paths import quarantine_dir
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.lake.storage import Lake
from pipelines.lib.reports.health import Health, day_health, week_score
from pipelines.lib.rollups.run import DAY, WEEK, period, rollup_dir
from pipelines.lib.slo.anomaly import BandSettings
from pipelines.lib.slo.evaluate import (
    AnomalyResult,
    SloConfig,
    SloResult,
    anomalies_for_day,
    evaluate_day,
)

DAILY, WEEKLY = "daily", "weekly"
TREND_DAYS = 28  # the daily report's latency trend: the day and the 27 before it
QUARANTINE = "quarantine"  # the asset that writes quarantine/


@dataclass(frozen=True, order=True)
class Source:
    """A lake partition a report read: its folder, and the asset partition that wrote it."""

    rel: str  # relative to the lake root
    asset: str
    partition: str


@dataclass(frozen=True)
class ReportData:
    kind: str  # DAILY or WEEKLY
    start: date
    end: date
    headline: dict[str, Any]  # the period's all-traffic row (headline.sql)
    changes: dict[str, float | None]  # weekly: against the previous week (week_change.sql)
    days: list[dict[str, Any]]  # all-traffic row per day (daily_series.sql)
    hours: list[dict[str, Any]]  # daily: per UTC hour (hourly_latency.sql)
    buckets: list[dict[str, Any]]  # CTR per (experiment_id, bucket)
    errors: list[dict[str, Any]]  # per (component, severity, error_code)
    quarantine: list[dict[str, Any]]  # per reason: line_count, most first
    slos: dict[date, list[SloResult]]
    anomalies: dict[date, list[AnomalyResult]]
    health: dict[date, Health]
    score: float
    bands: BandSettings  # how anomalies were judged (slo.yaml's anomaly section)
    sources: list[Source]  # the lake partitions read, by folder


class _Reader:
    """Runs the reports' SQL over lake partitions, remembering which it read."""

    def __init__(self, con: duckdb.DuckDBPyConnection, lake: Lake, asset: str, key: date):
        self.con, self.lake, self.asset, self.key = con, lake, asset, key
        self.sources: set[Source] = set()

    def rollup(self, name: str, grain: str, start: date, *, required: bool = True) -> list[str]:
        return self.files(Source(rollup_dir(name, grain, start), name, start.isoformat()), required)

    def quarantine(self, day: date) -> list[str]:
        return self.files(Source(quarantine_dir(day), QUARANTINE, day.isoformat()))

    def files(self, source: Source, required: bool = True) -> list[str]:
        rel = source.rel
        urls = self.lake.parquet_urls(rel)
        if urls:
            self.sources.add(source)
        elif required:
            raise FileNotFoundError(
                f"{self.asset} for {self.key} reads {self.lake.url(rel)}, which has no Parquet "
                "files: materialise that partition first"
            )
        return urls

    def table(self, name: str, **params: Any) -> pa.Table:
        return self.con.sql(load_sql(f"reports/{name}"), params=params).to_arrow_table()

    def rows(self, name: str, files: list[str]) -> list[dict[str, Any]]:
        return self.table(name, files=files).to_pylist() if files else []

    def one(self, name: str, files: list[str]) -> dict[str, Any]:
        rows = self.rows(name, files)
        if len(rows) != 1:
            raise ValueError(f"{name} over {files} gave {len(rows)} rows, expected one")
        return rows[0]


def _quarantine(reader: _Reader, days: list[date]) -> list[dict[str, Any]]:
    files = [url for d in days for url in reader.quarantine(d)]
    by_day = reader.table("quarantine_by_reason.sql", quarantine_glob=files)
    by_reason = by_day.group_by("reason").aggregate([("line_count", "sum")])
    by_reason = by_reason.rename_columns(["reason", "line_count"])
    return by_reason.sort_by([("line_count", "descending"), ("reason", "ascending")]).to_pylist()


def _slo_days(
    lake: Lake, days: list[date], config: SloConfig
) -> tuple[dict[date, list[SloResult]], dict[date, list[AnomalyResult]]]:
    return (
        {d: evaluate_day(lake, d, config) for d in days},
        {d: anomalies_for_day(lake, d, config) for d in days},
    )


def _health(
    slos: dict[date, list[SloResult]], anomalies: dict[date, list[AnomalyResult]]
) -> dict[date, Health]:
    return {d: day_health(slos[d], anomalies[d]) for d in slos}


def gather_daily(
    con: duckdb.DuckDBPyConnection, lake: Lake, day: date, config: SloConfig
) -> ReportData:
    reader = _Reader(con, lake, "report_daily", day)
    traffic = reader.rollup("traffic_daily", DAY, day)
    headline = reader.one("headline.sql", traffic)
    # The days before may be missing (the lake's first weeks, a gap): the trend skips them.
    before = days_between(day - timedelta(days=TREND_DAYS - 1), day - timedelta(days=1))
    trend_files = [
        url for d in before for url in reader.rollup("traffic_daily", DAY, d, required=False)
    ] + traffic
    slos, anomalies = _slo_days(lake, [day], config)
    health = _health(slos, anomalies)
    return ReportData(
        kind=DAILY,
        start=day,
        end=day,
        headline=headline,
        changes={},
        days=reader.rows("daily_series.sql", trend_files),
        hours=reader.rows("hourly_latency.sql", reader.rollup("traffic_hourly", DAY, day)),
        buckets=reader.rows("bucket_ctr_daily.sql", traffic),
        errors=reader.rows("error_taxonomy.sql", reader.rollup("errors_daily", DAY, day)),
        quarantine=_quarantine(reader, [day]),
        slos=slos,
        anomalies=anomalies,
        health=health,
        score=health[day].score,
        bands=config.bands,
        sources=sorted(reader.sources),
    )


def gather_weekly(
    con: duckdb.DuckDBPyConnection, lake: Lake, week_start: date, config: SloConfig
) -> ReportData:
    reader = _Reader(con, lake, "report_weekly", week_start)
    first, last = period(WEEK, week_start)
    days = days_between(first, last)
    week = reader.rollup("traffic_weekly", WEEK, first)
    series = reader.rows(
        "daily_series.sql", [url for d in days for url in reader.rollup("traffic_daily", DAY, d)]
    )
    slos, anomalies = _slo_days(lake, days, config)
    health = _health(slos, anomalies)
    return ReportData(
        kind=WEEKLY,
        start=first,
        end=last,
        headline=reader.one("headline.sql", week),
        changes=reader.one("week_change.sql", week),
        days=series,
        hours=[],
        buckets=reader.rows(
            "bucket_ctr_weekly.sql", reader.rollup("experiments_weekly", WEEK, first)
        ),
        errors=reader.rows(
            "error_taxonomy.sql",
            [url for d in days for url in reader.rollup("errors_daily", DAY, d)],
        ),
        quarantine=_quarantine(reader, days),
        slos=slos,
        anomalies=anomalies,
        health=health,
        score=week_score(list(health.values())),
        bands=config.bands,
        sources=sorted(reader.sources),
    )
