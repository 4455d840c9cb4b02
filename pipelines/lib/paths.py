"""The one place that knows where things live: the project's own folders and the lake's layout.

Lake paths are strings relative to the lake root and use "/" on every backend, so the same layout
works for a local folder and for ``s3://bucket/prefix``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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


def default_lake_root() -> str:
    return str(PROJECT_ROOT / "data" / "lake")


def default_catalog_path() -> str:
    return str(PROJECT_ROOT / "data" / "lake.duckdb")


# Relative locations inside the lake. Partition folders are Hive-style so DuckDB prunes on them.
def landing_dir(dt: date) -> str:
    return f"landing/dt={dt.isoformat()}"


def events_file(event_type: str, event_date: date) -> str:
    return f"events/event_type={event_type}/event_date={event_date.isoformat()}/part-00000.parquet"


def quarantine_file(event_date: date) -> str:
    return f"quarantine/event_date={event_date.isoformat()}/part-00000.parquet"


def ledger_file(event_date: date) -> str:
    return f"ledger/event_date={event_date.isoformat()}/part-00000.parquet"


def contracts_file(event_date: date) -> str:
    return f"contracts/event_date={event_date.isoformat()}/part-00000.parquet"


def quality_file(event_date: date) -> str:
    return f"quality/event_date={event_date.isoformat()}/part-00000.parquet"


DATA_DOCS_DIR = "reports/data_docs"
