"""The Dagster UI path for real: dagster-webserver on 127.0.0.1, a run launched through the
GraphQL API the UI calls, and the asset graph rendered in headless Chromium.

The instance launches runs as they are submitted (DefaultRunCoordinator), without a daemon: a
daemon would also start every schedule and sensor, which are on by default, and their runs over
the sample lake would compete with the one under test (tests/ops covers them).

Marked ``ui`` (deselect locally with ``-m "not ui"``); ``.ci/run`` installs Chromium and runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster_graphql import DagsterGraphQLClient

from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from tests.chromium import headless_chromium
from tests.conftest import free_port, stop, wait_until_serving

pytestmark = pytest.mark.ui

DAY = "2025-06-02"  # the generated day
ASSETS = (
    "click",
    "error",
    "impression",
    "ranking",
    "request",
    "quarantine",
    "ledger",
    "contracts",
    "traffic_daily",
    "traffic_weekly",
    "catalog",
)
GROUPS = ("ingest", "contracts", "rollups", "catalog")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    lake = root / "lake"
    manifest = generate(
        SampleConfig(start=__import__("datetime").date(2025, 6, 2), days=1, requests_per_day=40),
        str(lake),
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "TELEMETRY_LAKE_ROOT": str(lake)}
    port = free_port()
    logs = {"webserver": open(root / "webserver.log", "w")}  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=logs["webserver"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    try:
        wait_until_serving(
            f"http://127.0.0.1:{port}/server_info",
            processes[0],
            lambda: (root / "webserver.log").read_text()[-3000:],
        )
        yield {"port": port, "lake": lake, "root": root, "manifest": manifest}
    finally:
        for process in processes:
            stop(process)
        for handle in logs.values():
            handle.close()


def test_materialise_one_day_through_graphql(dagster):
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster["port"])
    run_id = client.submit_job_execution("ingest_daily", tags={"dagster/partition": DAY})
    deadline = time.monotonic() + 300
    status = client.get_run_status(run_id)
    while status.value not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status.value}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status.value == "SUCCESS", (dagster["root"] / "webserver.log").read_text()[-3000:]

    expected = dagster["manifest"]["partitions"][DAY]["rows"]
    for event_type, rows in expected.items():
        path = (
            dagster["lake"] / f"events/event_type={event_type}/event_date={DAY}/part-00000.parquet"
        )
        assert pq.ParquetFile(path).metadata.num_rows == rows, event_type


def test_asset_graph_renders_in_headless_chromium(dagster, tmp_path):
    browser = [*headless_chromium(tmp_path / "profile"), "--virtual-time-budget=20000"]
    base = f"http://127.0.0.1:{dagster['port']}"

    def dom(page: str) -> str:
        # Tall enough that the asset list, which renders only its visible rows, shows them all.
        return subprocess.run(
            [*browser, "--window-size=1600,3000", "--dump-dom", f"{base}/{page}"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    # With more than one group the global graph shows each group as one node.
    graph = dom("asset-groups")
    missing = [name for name in GROUPS if f">{name}<" not in graph]
    assert not missing, f"asset graph did not show the groups {missing}"
    catalog = dom("assets")
    missing = [name for name in ASSETS if f">{name}<" not in catalog]
    assert not missing, f"asset catalog did not list {missing}"
    url = f"{base}/asset-groups"

    screenshot = tmp_path / "asset-graph.png"
    subprocess.run(
        [*browser, "--window-size=1600,1000", f"--screenshot={screenshot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000
