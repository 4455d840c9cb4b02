"""Bounded waits on S3: an endpoint that accepts connections and never answers fails the lake's
first listing within the configured timeouts and retries (not multiplied by s3fs's own retry
loop), with an error naming the endpoint; the configured values (and the defaults) reach the
botocore client through the lake resource and the environment."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from pipelines.defs import resources
from pipelines.lib.lake import settings
from pipelines.lib.lake.errors import ConfigError, S3EndpointError
from pipelines.lib.lake.storage import Lake, S3Timeouts
from tests.conftest import new_bucket


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)  # held open, never answered

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent(s3_credentials) -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_silent_endpoint_fails_the_listing_within_the_bound_naming_it(silent):
    lake = Lake(
        "s3://lake-bucket/lake",
        {"client_kwargs": {"endpoint_url": silent.endpoint}},
        s3_timeouts=S3Timeouts(connect_s=2, read_s=2, retries=1),
    )
    started = time.monotonic()
    with pytest.raises(S3EndpointError) as failed:
        lake.list_files("events/event_type=click/event_date=2025-06-02")
    took = time.monotonic() - started
    # Two attempts of a 2 s read (plus botocore's backoff of at most 1 s between them); s3fs's
    # own loop (5 attempts by default) would have made it ten.
    assert 4 <= took < 8, took
    assert len(silent.accepted) == 2
    message = str(failed.value)
    assert message.startswith(
        f"S3 endpoint {silent.endpoint} did not answer within 2 s (TELEMETRY_S3_READ_TIMEOUT_S) "
        "on any of 2 attempts (TELEMETRY_S3_RETRIES=1), for list_objects_v2 lake-bucket/lake/"
    )
    assert "\n" not in message


def test_the_configured_timeouts_reach_the_client_through_the_environment(monkeypatch):
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", "s3://lake-bucket/lake")
    monkeypatch.setenv("TELEMETRY_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TELEMETRY_S3_CONNECT_TIMEOUT_S", "3")
    monkeypatch.setenv("TELEMETRY_S3_READ_TIMEOUT_S", "7.5")
    monkeypatch.setenv("TELEMETRY_S3_RETRIES", "0")
    with dg.build_resources({"lake": resources.defs().resources["lake"]}) as built:
        config = built.lake.lake().fs.s3.meta.config  # a client; nothing is sent
    assert (config.connect_timeout, config.read_timeout) == (3, 7.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}


def test_the_defaults_are_10_s_to_connect_60_s_to_read_and_3_retries(monkeypatch):
    for name in ("CONNECT_TIMEOUT_S", "READ_TIMEOUT_S", "RETRIES"):
        monkeypatch.delenv(f"TELEMETRY_S3_{name}", raising=False)
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", "s3://lake-bucket/lake")
    with dg.build_resources({"lake": resources.defs().resources["lake"]}) as built:
        lake = built.lake.lake()
    config = lake.fs.s3.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert lake.fs.retries == 1  # only botocore retries
    # Any lake on S3, also one built without the resource (a test, verify_bundle), is bounded.
    assert Lake("s3://lake-bucket/other").fs.s3.meta.config.read_timeout == 60


def test_a_lake_on_the_moto_server_works_with_the_bounded_client(s3_endpoint, s3_credentials):
    bucket = new_bucket(s3_endpoint)
    lake = Lake(f"s3://{bucket}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}})
    with lake.staged_file("reports/x.txt") as local, open(local, "w") as handle:
        handle.write("x")
    assert [f.path for f in lake.list_files("reports")] == ["reports/x.txt"]


def test_s3_settings_fail_in_one_line_naming_the_variable():
    assert settings.s3_timeouts(None, "", None) == S3Timeouts(10, 60, 3)
    assert settings.s3_timeouts("1.5", "20", "5") == S3Timeouts(1.5, 20, 5)
    for args, variable in (
        (("soon", None, None), "TELEMETRY_S3_CONNECT_TIMEOUT_S"),
        ((None, "0", None), "TELEMETRY_S3_READ_TIMEOUT_S"),
        ((None, None, "-1"), "TELEMETRY_S3_RETRIES"),
        ((None, None, "two"), "TELEMETRY_S3_RETRIES"),
    ):
        with pytest.raises(ConfigError) as error:
            settings.s3_timeouts(*args)
        assert str(error.value).startswith(f"{variable}=")
        assert "\n" not in str(error.value)
