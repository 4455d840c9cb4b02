"""Partition leases for real, on a local folder and on the moto S3 server: one holder at a time
(real processes racing), waiting then refusing with the holder's name, renewal keeping a live
lease, takeover of a killed holder's expired lease, release when the block raises, and a holder
told when its lease was taken from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.lib.lake import settings
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.lease import Lease, LeaseHeldError, LeaseLostError, Owner, lease_path
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from tests.conftest import new_bucket

PARTITION = "2025-06-02"
REL = lease_path("ingest", PARTITION)


@dataclass
class Where:
    lake: Lake
    endpoint: str  # "" for a local lake

    def lease(self, run_id: str, **kwargs) -> Lease:
        kwargs.setdefault("poll_s", 0.1)
        return Lease(self.lake, "ingest", PARTITION, Owner.current(run_id), **kwargs)

    def contents(self) -> dict | None:
        if not self.lake.exists(REL):
            return None
        with self.lake.open(REL) as handle:
            return json.loads(handle.read())

    def worker(self, *args: str, **popen) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.lake.lease_worker", self.lake.root, self.endpoint, *args],
            cwd=PROJECT_ROOT, start_new_session=True, **popen,
        )  # fmt: skip


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path) -> Where:
    if request.param == "local":
        return Where(Lake(str(tmp_path / "lake")), "")
    endpoint = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("s3_credentials")
    root = f"s3://{new_bucket(endpoint)}/lake"
    return Where(Lake(root, {"client_kwargs": {"endpoint_url": endpoint}}), endpoint)


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_the_lease_names_its_holder_and_is_gone_after_release(where):
    before = time.time()
    with where.lease("run-a", ttl_s=30) as lease:
        doc = where.contents()
        assert doc["lease"] == f"ingest/{PARTITION}"
        assert doc["owner"] == {"host": os.uname().nodename, "pid": os.getpid(), "run_id": "run-a"}
        assert doc["token"] == lease.record.token
        acquired, expires = _epoch(doc["acquired_at"]), _epoch(doc["expires_at"])
        assert before - 0.01 <= acquired <= time.time()
        assert expires - acquired == pytest.approx(30, abs=0.01)
    assert where.contents() is None
    assert where.lake.url(REL).endswith(f"/_leases/ingest/{PARTITION}.json")


def test_a_second_writer_waits_then_refuses_naming_the_holder(where):
    with where.lease("run-a", ttl_s=30):
        holder = where.contents()
        started = time.monotonic()
        with pytest.raises(LeaseHeldError) as refused, where.lease("run-b", wait_s=1):
            pass
        waited = time.monotonic() - started
    assert 1 <= waited < 3
    message = str(refused.value)
    assert f"partition ingest/{PARTITION} is being written by run run-a (pid {os.getpid()}" in (
        message
    )
    assert f"expires at {holder['expires_at']}" in message
    assert "TELEMETRY_LEASE_WAIT_S" in message
    assert "\n" not in message


def test_a_waiting_writer_gets_the_lease_when_the_holder_releases_it(where):
    first = where.lease("run-a", ttl_s=30)
    first.acquire()
    timer = threading.Timer(1.0, first.release)
    timer.start()
    started = time.monotonic()
    try:
        with where.lease("run-b", wait_s=20):
            waited = time.monotonic() - started
            assert where.contents()["owner"]["run_id"] == "run-b"
    finally:
        timer.join()
    assert 0.9 <= waited < 5


def test_the_heartbeat_keeps_a_live_lease_past_its_time_to_live(where):
    with where.lease("run-a", ttl_s=1.0):
        first = where.contents()
        time.sleep(2.5)  # two and a half times the time to live: renewed about ten times
        renewed = where.contents()
        assert _epoch(renewed["expires_at"]) > time.time()
        assert renewed["acquired_at"] == first["acquired_at"]
        assert renewed["token"] == first["token"]
        with pytest.raises(LeaseHeldError), where.lease("run-b", wait_s=0):
            pass


def test_the_expired_lease_of_a_killed_holder_is_taken_over(where):
    holder = where.worker("hold", "run-killed", "1.5", "0", stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held = where.contents()
        assert held["owner"] == {
            "host": os.uname().nodename, "pid": holder.pid, "run_id": "run-killed"
        }  # fmt: skip
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    killed_at = time.time()
    messages: list[str] = []
    with where.lease("run-next", wait_s=20, log=messages.append):
        taken = time.time()
        assert where.contents()["owner"]["run_id"] == "run-next"
    # Not before the dead holder's lease expired, and soon after.
    assert _epoch(held["expires_at"]) <= taken < max(killed_at, _epoch(held["expires_at"])) + 2
    assert any("held by run run-killed" in m for m in messages)
    assert any(m.startswith(f"Lease ingest/{PARTITION}: took over the expired lease of run "
                            "run-killed") for m in messages)  # fmt: skip


def test_racing_processes_write_one_at_a_time(where, tmp_path):
    log = tmp_path / "race.log"
    names = [f"run-{n}" for n in range(4)]
    workers = [where.worker("race", name, "10", "60", str(log)) for name in names]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    assert sorted(name for name, what, *_ in lines if what == "start") == names
    # Every start is followed by the same writer's end, before anyone else starts.
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        assert (start[0], start[1], end[0], end[1]) == (start[0], "start", start[0], "end")
        assert float(start[2]) <= float(end[2])
    assert where.contents() is None


def test_the_lease_is_released_when_the_block_raises(where):
    with pytest.raises(ValueError, match="boom"), where.lease("run-a", ttl_s=30):
        assert where.contents() is not None
        raise ValueError("boom")
    assert where.contents() is None
    with where.lease("run-b", wait_s=0):
        assert where.contents()["owner"]["run_id"] == "run-b"


def test_a_holder_whose_lease_was_taken_over_is_told(where):
    lease = where.lease("run-a", ttl_s=0.8)
    lease.acquire()
    # Another writer's lease in its place (as after a takeover while this holder stalled).
    stolen = dict(where.contents(), token="f" * 32, owner={"host": "h", "pid": 1, "run_id": "x"})
    with where.lake.open(REL, "wb") as handle:
        handle.write(json.dumps(stolen).encode())
    time.sleep(0.5)  # a heartbeat (every 0.2 s) finds it
    with pytest.raises(LeaseLostError, match="taken over or removed"):
        lease.check()
    with pytest.raises(LeaseLostError, match="another writer may have written"):
        lease.release()
    assert where.contents()["token"] == "f" * 32  # the other writer's lease is left alone


def test_s3_lease_writes_are_conditional_on_the_moto_server(s3_endpoint, s3_credentials):
    """moto (5.2) honours If-None-Match: * and If-Match on PutObject and If-Match on
    DeleteObject, which the S3 lease is built on, as AWS S3 does; an S3-compatible store that
    ignored them would let two writers hold one lease."""
    import boto3
    from botocore.exceptions import ClientError

    bucket = new_bucket(s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"0000"'}):
        with pytest.raises(ClientError) as failed:
            s3.put_object(Bucket=bucket, Key="k", Body=b"2", **condition)
        assert failed.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0000"')
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_lease_settings_fail_in_one_line_naming_the_variable():
    assert settings.lease_wait_s(None) == 300
    assert settings.lease_wait_s("0") == 0
    assert settings.lease_ttl_s("45") == 45
    for call, value, variable in (
        (settings.lease_wait_s, "soon", "TELEMETRY_LEASE_WAIT_S"),
        (settings.lease_wait_s, "-1", "TELEMETRY_LEASE_WAIT_S"),
        (settings.lease_ttl_s, "5", "TELEMETRY_LEASE_TTL_S"),
    ):
        with pytest.raises(ConfigError) as error:
            call(value)
        assert str(error.value).startswith(f"{variable}={value!r}")
        assert "\n" not in str(error.value)


def test_lease_names_are_checked():
    assert lease_path("rollups/traffic_weekly", "2025-06-02") == (
        "_leases/rollups/traffic_weekly/2025-06-02.json"
    )
    for group, partition in (("ingest", "../x"), ("ingest", "a/b"), ("ingest", ""),
                             ("../ingest", "2025-06-02"), ("ingest/", "2025-06-02")):  # fmt: skip
        with pytest.raises(ValueError, match="cannot name a lease"):
            lease_path(group, partition)
    assert Path(REL).parts[0] == "_leases"
