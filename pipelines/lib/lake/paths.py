"""The one place that knows where things live: the project's own folders and the lake's layout.

Lake paths are strings relative to the lake root and use "/" on every backend, so the same layout
works for a local folder and for ``s3://bucket/prefix``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _project_dir(name: str) -> Path:
    path = PROJECT_ROOT / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} not found: telemetry-lake expects to run from a source checkout "
            "installed with `pip install -e .`"
        )
    return path


def schemas_dir() -> Path:
    return _project_dir("schemas")


def sql_dir() -> Path:
    return _project_dir("sql")


def docs_dir() -> Path:
    return _project_dir("docs")


def slo_file() -> Path:
    """The default SLO file (TELEMETRY_SLO_FILE, through the ``slo`` resource, names another)."""
    return PROJECT_ROOT / "slo.yaml"


def default_lake_root() -> str:
    return str(PROJECT_ROOT / "data" / "lake")


def default_catalog_path() -> str:
    return str(PROJECT_ROOT / "data" / "lake.duckdb")


def catalog_path(value: str | None) -> str:
    """The catalog file ``value`` names (TELEMETRY_CATALOG), absolute; blank: the default."""
    return os.path.abspath((value or "").strip() or default_catalog_path())


# Relative locations inside the lake. Partition folders are Hive-style so DuckDB prunes on them.
def landing_dir(dt: date) -> str:
    return f"landing/dt={dt.isoformat()}"


# A partition is a folder: readers take every ``*.parquet`` in it (compaction may split one into
# several files); a writer publishes the folder whole with one file, PART_FILE.
PART_FILE = "part-00000.parquet"


def _day_dir(table: str, event_date: date) -> str:
    """The folder of ``table``'s partition of ``event_date``: every day-partitioned table's."""
    return f"{table}/event_date={event_date.isoformat()}"


def events_dir(event_type: str, event_date: date) -> str:
    return _day_dir(f"events/event_type={event_type}", event_date)


def events_file(event_type: str, event_date: date) -> str:
    return f"{events_dir(event_type, event_date)}/{PART_FILE}"


def quarantine_dir(event_date: date) -> str:
    return _day_dir("quarantine", event_date)


def quarantine_file(event_date: date) -> str:
    return f"{quarantine_dir(event_date)}/{PART_FILE}"


def ledger_dir(event_date: date) -> str:
    return _day_dir("ledger", event_date)


def ledger_file(event_date: date) -> str:
    return f"{ledger_dir(event_date)}/{PART_FILE}"


def contracts_dir(event_date: date) -> str:
    return _day_dir("contracts", event_date)


def contracts_file(event_date: date) -> str:
    return f"{contracts_dir(event_date)}/{PART_FILE}"


def quality_file(event_date: date) -> str:
    return f"{_day_dir('quality', event_date)}/{PART_FILE}"


DATA_DOCS_DIR = "reports/data_docs"


def daily_report_dir(event_date: date) -> str:
    return f"reports/daily/event_date={event_date.isoformat()}"


def weekly_report_dir(week_start: date) -> str:
    return f"reports/weekly/week_start={week_start.isoformat()}"
