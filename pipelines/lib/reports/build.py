"""Build one report (a day's or a week's) and publish ``report.md`` and ``report.html`` together
as the report's folder, atomically (``Lake.staged_dir``): a reader finds the previous pair or the
new one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pipelines.lib.lake.paths import daily_report_dir, weekly_report_dir
from pipelines.lib.lake.sql import lake_connection
from pipelines.lib.lake.storage import Lake
from pipelines.lib.reports.data import DAILY, WEEKLY, Source, gather_daily, gather_weekly
from pipelines.lib.reports.render import to_html, to_markdown
from pipelines.lib.reports.sections import document
from pipelines.lib.slo.evaluate import SloConfig

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
GATHER = {DAILY: gather_daily, WEEKLY: gather_weekly}
FOLDER = {DAILY: daily_report_dir, WEEKLY: weekly_report_dir}


@dataclass(frozen=True)
class ReportResult:
    kind: str
    start: date
    end: date
    path: str  # the report's folder, relative to the lake root
    markdown: str
    health_score: float
    seconds: float


def build_report(
    lake: Lake,
    kind: str,
    start: date,
    config: SloConfig,
    *,
    memory_limit: str = "2GB",
    threads: int = 2,
    run_link: Callable[[Source], str | None] | None = None,
) -> ReportResult:
    """The ``kind`` (DAILY or WEEKLY) report of the period starting on ``start``. ``run_link``
    gives the URL of the Dagster run that wrote a source partition, or None (no link)."""
    if kind not in GATHER:
        raise ValueError(f"a report is {DAILY!r} or {WEEKLY!r}, not {kind!r}")
    started = time.monotonic()
    with lake_connection(lake, memory_limit, threads) as con:
        data = GATHER[kind](con, lake, start, config)
    links = {}
    if run_link is not None:
        links = {s: url for s in data.sources if (url := run_link(s)) is not None}
    doc = document(data, links)
    markdown, html = to_markdown(doc), to_html(doc)
    folder = FOLDER[kind](data.start)
    with lake.staged_dir(folder) as staging:
        for name, text in ((MARKDOWN_FILE, markdown), (HTML_FILE, html)):
            with open(os.path.join(staging, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    return ReportResult(
        kind, data.start, data.end, folder, markdown, data.score, time.monotonic() - started
    )
