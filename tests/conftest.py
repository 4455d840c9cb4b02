"""Shared fixtures: a real lake in tmp_path and helpers to drop landing files into it."""

from __future__ import annotations

import copy
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

import pipelines.definitions
from pipelines.defs.resources import (
    DuckDBSettings,
    LakeResource,
    PiiResource,
    PrivacyResource,
    RetentionResource,
    RollupsResource,
)
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import Keyring, PiiKey
from pipelines.lib.ingest.partition import IngestResult, IngestSettings, ingest_partition
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import load_event_schemas

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

    def ingest(
        self, day: date = DAY, *, keys: Keyring | PiiKey = KEY, **settings: Any
    ) -> IngestResult:
        return ingest_partition(self.lake, day, keys, IngestSettings(**settings))

    def query(self, sql: str, *params: Any) -> list[tuple]:
        con = duckdb.connect()
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql.replace("{root}", str(self.root)), list(params)).fetchall()

    def events(self, event_type: str, day: date = DAY) -> list[dict]:
        path = self.root / f"events/event_type={event_type}/event_date={day}/part-00000.parquet"
        return pq.read_table(path).to_pylist()

    def ledger(self, day: date = DAY) -> list[dict]:
        path = self.root / f"ledger/event_date={day}/part-00000.parquet"
        return pq.read_table(path).to_pylist()

    def quarantine(self, day: date = DAY) -> list[dict]:
        path = self.root / f"quarantine/event_date={day}/part-00000.parquet"
        rows = pq.read_table(path).to_pylist()
        return sorted(rows, key=lambda r: (r["landing_file"], r["line_no"]))


# The longest modules first. CI runs the suite on two pytest-xdist workers (one module per worker
# at a time); started last, the backfill alone would keep the run going long after the rest ended.
LONGEST_FIRST = (
    "tests/deploy/",
    "tests/automation/test_ripple.py",
    "tests/e2e/test_e2e_sample.py",
    "tests/privacy/test_pii_corpus_e2e.py",
    "tests/defs/test_concurrency.py",
    "tests/defs/test_run_recovery.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next(
            (n for n, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)  # stable: every other module keeps its place


def load_defs() -> dg.Definitions:
    """The code location's definitions, loaded afresh: they read the environment as it is now."""
    return dg.load_from_defs_folder(path_within_project=Path(pipelines.definitions.__file__).parent)


@pytest.fixture
def lake(tmp_path: Path) -> LakeHelper:
    return LakeHelper(tmp_path / "lake")


def privacy_resources(root: str, memory_limit: str = "1GB") -> dict:
    """The resources an erasure or an export job runs with, on the lake at ``root``."""
    return {
        "lake": LakeResource(root=root),
        "pii": PiiResource(),
        "duckdb": DuckDBSettings(memory_limit=memory_limit),
        "rollups": RollupsResource(),
        "privacy": PrivacyResource(),
        "retention": RetentionResource(),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """End a server started with ``start_new_session=True``, its children included."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_serving(
    url: str, process: subprocess.Popen, why: Callable[[], str], timeout_s: float = 180
) -> None:
    """Poll ``url`` until the server answers; fail with ``why()`` (its log) if it exits or the
    time runs out first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(why())
            time.sleep(1)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API: a moto server on 127.0.0.1, started for the session and stopped after."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers: up
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_credentials() -> Iterator[None]:
    # moto accepts any credentials; set fake ones so nothing looks for real ones.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
