"""Shared fixtures: a real lake in tmp_path and helpers to drop landing files into it."""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.lib import pii
from pipelines.lib.ingest import IngestResult, IngestSettings, PiiKey, ingest_partition
from pipelines.lib.schemas import load_event_schemas
from pipelines.lib.storage import Lake

DAY = date(2025, 6, 2)
KEY = PiiKey(pii.DEV_KEY)


def ts(day: date, seconds: float = 3600) -> int:
    """Epoch ms `seconds` after midnight UTC of `day`."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return int((midnight + seconds) * 1000)


def event(event_type: str, day: date = DAY, seconds: float = 3600, **fields: Any) -> dict:
    """A valid event of the type (the schema's example) with a fresh id and time on `day`."""
    doc = copy.deepcopy(load_event_schemas()[event_type].document["examples"][0])
    doc["event_id"] = str(uuid.uuid4())
    doc["timestamp_ms"] = ts(day, seconds)
    doc.update(fields)
    return doc


def line(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class LakeHelper:
    def __init__(self, root: Path):
        self.root = root
        self.lake = Lake(str(root))

    def land(self, dt: date, name: str, lines: list[bytes] | bytes, *, gz: bool = False) -> str:
        data = lines if isinstance(lines, bytes) else b"\n".join(lines) + b"\n"
        if gz:
            data = gzip.compress(data, mtime=0)
        folder = self.root / "landing" / f"dt={dt.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return f"landing/dt={dt.isoformat()}/{name}"

    def ingest(self, day: date = DAY, **settings: Any) -> IngestResult:
        return ingest_partition(self.lake, day, KEY, IngestSettings(**settings))

    def query(self, sql: str, *params: Any) -> list[tuple]:
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql.replace("{root}", str(self.root)), list(params)).fetchall()

    def events(self, event_type: str, day: date = DAY) -> list[dict]:
        path = self.root / f"events/event_type={event_type}/event_date={day}/part-00000.parquet"
        return pq.read_table(path).to_pylist()

    def quarantine(self, day: date = DAY) -> list[dict]:
        path = self.root / f"quarantine/event_date={day}/part-00000.parquet"
        rows = pq.read_table(path).to_pylist()
        return sorted(rows, key=lambda r: (r["landing_file"], r["line_no"]))


@pytest.fixture
def lake(tmp_path: Path) -> LakeHelper:
    return LakeHelper(tmp_path / "lake")
