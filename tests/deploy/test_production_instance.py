"""deploy/dagster.yaml exercised for real: a Postgres-backed instance with the queued run
coordinator, dagster-webserver and the daemon, running an asset backfill of 14 days (of the ingest
assets; of every daily asset with TELEMETRY_TEST_BACKFILL=daily) against a lake on the moto S3
API, each run with the multiprocess executor; its files equal one-by-one runs of the same days.
The Kubernetes run launcher is the one part swapped out (there is no cluster here), and its
configuration is loaded by dagster-k8s itself in a test of its own."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml
from dagster_k8s import K8sRunLauncher

from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from tests.conftest import free_port, load_defs, new_bucket, stop, wait_until_serving

PRODUCTION = PROJECT_ROOT / "deploy" / "dagster.yaml"
BIN = Path(sys.executable).parent
START = date(2025, 6, 2)
DAYS = [START + timedelta(days=n) for n in range(14)]
TEST_KEY = "deploy-test-key-0123456789-abcdefghij"
INGEST_ASSETS = ("click", "error", "impression", "ranking", "request", "quarantine", "ledger")
# The daily_lake job's assets: an engineer's "materialise these 14 days" in the UI. The backfill
# of all of them is 42 runs (ingest, then contracts, then rollups, per day), about 14 minutes
# here; CI backfills the ingest assets (14 runs) and TELEMETRY_TEST_BACKFILL=daily runs it all.
DAILY_ASSETS = (
    *INGEST_ASSETS, "contracts", "traffic_daily", "traffic_parts", "traffic_hourly", "errors_daily"
)  # fmt: skip
DAILY = os.environ.get("TELEMETRY_TEST_BACKFILL") == "daily"
BACKFILLED = DAILY_ASSETS if DAILY else INGEST_ASSETS
DEFAULT_LAUNCHER = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}"""
BACKFILL_STATUS = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
BACKFILL_RUNS = """
query ($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


def _production() -> dict:
    return yaml.safe_load(PRODUCTION.read_text())


def test_the_production_launcher_config_is_accepted_by_dagster_k8s(tmp_path, monkeypatch):
    config = _production()
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    # Outside a cluster: a kubeconfig pointing nowhere (nothing is contacted when it loads).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "none",
            "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "none", "user": {"token": "none"}}],
            "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        })
    )  # fmt: skip
    config["run_launcher"]["config"].update(
        load_incluster_config=False, kubeconfig_file=str(kubeconfig)
    )
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "telemetry")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "telemetry"
        assert "TELEMETRY_DUCKDB_MEMORY_LIMIT=2GB" in launcher.env_vars
        resources = launcher.run_k8s_config["container_config"]["resources"]
        assert resources == {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"memory": "4Gi"}}


def _post(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        pytest.fail(f"{error}: {error.read()[-3000:]!r}")
    assert "errors" not in body, body
    return body["data"]


def _lake_rows(lake: Lake) -> dict[str, list[str]]:
    """Every Parquet file of the lake outside landing/, as its rows in a canonical order."""
    rows = {}
    for url in lake.glob_urls("**/*.parquet"):
        rel = url.removeprefix(lake.root + "/")
        if not rel.startswith("landing/"):
            table = pq.read_table(lake.path(rel), filesystem=lake.fs)
            rows[rel] = sorted(
                json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist()
            )
    return rows


def _one_by_one(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same days as single-partition runs, in order: every day's ingest first, then every
    day's contracts (which read the neighbouring days) and daily rollups."""
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", root)
    defs = load_defs()
    with dg.instance_for_test() as instance:
        for job in (
            ("ingest_daily", "contracts_daily", "rollups_daily") if DAILY else ("ingest_daily",)
        ):
            for day in DAYS:
                result = defs.resolve_job_def(job).execute_in_process(
                    partition_key=day.isoformat(), instance=instance
                )
                assert result.success, (job, day)


@pytest.mark.slow
def test_a_14_day_backfill_on_the_production_instance_matches_one_by_one_runs(
    postgres, s3_endpoint, s3_credentials, tmp_path, monkeypatch
):
    # The backfill writes to S3; the one-by-one reference to a local folder (the same results on
    # either backend is part of the claim, and the reference is quicker there).
    roots = {
        "backfill": f"s3://{new_bucket(s3_endpoint)}/lake",
        "one_by_one": str(tmp_path / "lake"),
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # the generator's plain fsspec URL
    for root in roots.values():
        generate(SampleConfig(start=START, days=len(DAYS), requests_per_day=60), root)
    settings = {
        "TELEMETRY_S3_ENDPOINT_URL": s3_endpoint,
        "TELEMETRY_PII_KEY": TEST_KEY,
        "TELEMETRY_DUCKDB_MEMORY_LIMIT": "512MB",
        "TELEMETRY_DUCKDB_THREADS": "1",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    _one_by_one(roots["one_by_one"], monkeypatch)

    # The production instance, with the default launcher in place of Kubernetes' (runs are
    # subprocesses of the daemon, each with the multiprocess executor).
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = _production()
    config["run_launcher"] = DEFAULT_LAUNCHER
    # Two runs at a time on CI's two cores (the file's 16 is a cluster's fan-out).
    config["concurrency"]["runs"]["max_concurrent_runs"] = 2
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        **postgres,
        **settings,
        "DAGSTER_HOME": str(home),
        "TELEMETRY_LAKE_ROOT": roots["backfill"],
    }
    location = ["-m", "pipelines.definitions"]
    # Only the backfill's runs: the sensors that would react to the landing files or to the
    # finished runs (and take one of the two slots) are switched off first, as an operator does
    # before a large backfill.
    for sensor in ("landing_sensor", "compaction_sensor", "freshness_checks_sensor"):
        stopped = subprocess.run(
            [str(BIN / "dagster"), "sensor", "stop", sensor, *location],
            cwd=home, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert stopped.returncode == 0, stopped.stderr[-3000:]
    port = free_port()
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("webserver", "daemon")}  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *location],
            cwd=home, env=env, stdout=logs["webserver"], stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", *location],
            cwd=home, env=env, stdout=logs["daemon"], stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]  # fmt: skip

    def tail() -> str:
        return "\n".join(
            f"--- {name}\n{(tmp_path / f'{name}.log').read_text()[-3000:]}" for name in logs
        )

    try:
        wait_until_serving(f"http://127.0.0.1:{port}/server_info", processes[0], tail)
        span = {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat()}
        launched = _post(
            port,
            LAUNCH_BACKFILL,
            {
                # Exactly these days of every asset: with partition names alone Dagster also
                # targets the contracts of the days either side, which read their neighbours.
                "params": {
                    "partitionsByAssets": [
                        {"assetKey": {"path": [name]}, "partitions": {"range": span}}
                        for name in BACKFILLED
                    ]
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        deadline = time.monotonic() + 1200
        while True:
            status = _post(port, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            if status["status"] not in ("REQUESTED", "CANCELING"):
                break
            assert time.monotonic() < deadline, f"backfill still {status}\n{tail()}"
            time.sleep(3)
        runs = _post(port, BACKFILL_RUNS, {"id": backfill_id})["runsOrError"]["results"]
    finally:
        for process in processes:
            stop(process)
        for handle in logs.values():
            handle.close()

    assert status["status"] == "COMPLETED_SUCCESS", f"{status}\n{tail()}"
    # The daemon's runs log to its output: each ran its steps in subprocesses.
    assert "Executing steps using multiprocess executor" in (tmp_path / "daemon.log").read_text()
    assert runs and {r["status"] for r in runs} == {"SUCCESS"}, runs
    partitions = {t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition"}
    assert partitions == {day.isoformat() for day in DAYS}

    backfilled = _lake_rows(
        Lake(roots["backfill"], {"client_kwargs": {"endpoint_url": s3_endpoint}})
    )
    one_by_one = _lake_rows(Lake(roots["one_by_one"]))
    assert sorted(backfilled) == sorted(one_by_one)
    assert any(rel.startswith("contracts/" if DAILY else "ledger/") for rel in backfilled)
    for rel, rows in one_by_one.items():
        assert backfilled[rel] == rows, rel
