"""A newcomer's first run: the demo, then ``make dev``'s Dagster (webserver, daemon, code server)
on the same instance, as the README says, read over the GraphQL API the UI calls.

After a demo of days through yesterday, nothing the UI shows may say "broken": no check's latest
result failed at ERROR (the freshness checks pass, honestly: the data runs through yesterday),
and no sensor or schedule launches a run in the first minutes (the landing sensor finds every
reader of the demo's files up to date, the freshness checks were evaluated by the demo, every
report the automation conditions would build exists). The newcomer modal is off and leaves no
``.nux/``. A second demo run skips everything. The asset graph is rendered in headless Chromium
(the screenshot is left in the test's folder: ``pytest --basetemp=DIR`` to look at it).

A demo pinned to old dates (``--start``) is stale by definition: its freshness checks say so, at
WARN, naming the reason; a ``--start`` before TELEMETRY_FIRST_DATE is refused in one line; a demo
of other dates starts its lake again; and the demo never writes over a landing zone it did not
write.

Marked ``ui`` (``-m "not ui"`` deselects them); ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.chromium import headless_chromium
from tests.conftest import free_port, wait_until_serving

pytestmark = pytest.mark.ui

DEMO_DAYS = 2  # a small sample: the two days through yesterday
# Long enough for every sensor's first tick (the landing sensor ticks at start, then every
# 120 s; automation every 60 s; freshness every 30 s) and for a run it requested to show.
WATCH_S = 90
SENSOR_SETTLE_TIMEOUT_S = 240


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.demo", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _env(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # the project's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(
        DAGSTER_HOME=str(home),
        TELEMETRY_LAKE_ROOT=str(root / "lake"),
        TELEMETRY_CATALOG=str(root / "lake.duckdb"),
    )
    return env


class GraphQL:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, **variables: object) -> dict:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = json.load(answer)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("first_run")
    env = _env(root)
    demo = _demo(env, "--days", str(DEMO_DAYS))
    assert demo.returncode == 0, demo.stderr[-3000:]
    again = _demo(env, "--days", str(DEMO_DAYS))
    assert again.returncode == 0, again.stderr[-3000:]

    port = free_port()
    log = root / "dev.log"
    with open(log, "w") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "pipelines.dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_serving(
                f"http://127.0.0.1:{port}/server_info", dev, lambda: log.read_text()[-3000:]
            )
            graphql = GraphQL(port)
            started = time.monotonic()
            ticks = _wait_for_first_ticks(graphql)
            time.sleep(max(0.0, WATCH_S - (time.monotonic() - started)))
            yield {
                "root": root,
                "home": Path(env["DAGSTER_HOME"]),
                "demo": demo,
                "again": again,
                "graphql": graphql,
                "port": port,
                "ticks": ticks,
                "log": log,
            }
        finally:
            dev.send_signal(signal.SIGTERM)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()


REPOSITORIES = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""

INSTIGATORS = """
query ($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) {
    ... on Sensors { results { name sensorState { status
        ticks(limit: 20) { status runIds error { message } } } } }
  }
  schedulesOrError(repositorySelector: $selector) {
    ... on Schedules { results { name scheduleState { status
        ticks(limit: 20) { status runIds error { message } } } } }
  }
}
"""


def _selector(graphql: GraphQL) -> dict:
    [repo] = graphql(REPOSITORIES)["repositoriesOrError"]["nodes"]
    return {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]}


def _wait_for_first_ticks(graphql: GraphQL) -> dict[str, list[dict]]:
    """Every running sensor's ticks, once each has ticked at least once (and ended the tick)."""
    deadline = time.monotonic() + SENSOR_SETTLE_TIMEOUT_S
    selector = _selector(graphql)
    while True:
        data = graphql(INSTIGATORS, selector=selector)
        sensors = {
            s["name"]: s["sensorState"]["ticks"]
            for s in data["sensorsOrError"]["results"]
            if s["sensorState"]["status"] == "RUNNING"
        }
        waiting = [
            name
            for name, ticks in sensors.items()
            if not [t for t in ticks if t["status"] != "STARTED"]
        ]
        if not waiting:
            for s in data["schedulesOrError"]["results"]:
                sensors[f"schedule {s['name']}"] = s["scheduleState"]["ticks"]
            return sensors
        assert time.monotonic() < deadline, f"sensors that never ticked: {waiting}"
        time.sleep(5)


RUNS = """
{ runsOrError(limit: 500) { ... on Runs { results { runId jobName status
    tags { key value } } } } }
"""


def test_the_demo_runs_named_jobs_and_no_sensor_or_schedule_launched_a_run(first_run):
    runs = first_run["graphql"](RUNS)["runsOrError"]["results"]
    assert runs, "the demo's runs are not in the instance"
    launched = [
        (r["jobName"], {t["key"]: t["value"] for t in r["tags"]})
        for r in runs
        if {"key": "telemetry/trigger", "value": "demo"} not in r["tags"]
    ]
    assert launched == [], f"runs not launched by the demo: {launched}"
    assert all(r["status"] == "SUCCESS" for r in runs)
    assert not [r for r in runs if r["jobName"].startswith("__")]  # named jobs only
    for name, ticks in first_run["ticks"].items():
        assert not [t["runIds"] for t in ticks if t["runIds"]], f"{name} launched runs"
        errors = [t["error"]["message"][:300] for t in ticks if t["status"] == "FAILURE"]
        assert errors == [], f"{name} failed: {errors}"


ASSET_CHECKS = """
{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""

EXECUTIONS = """
query ($key: AssetKeyInput!, $name: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 200) {
    status partition evaluation { severity success description }
  }
}
"""


def _latest_check_results(graphql: GraphQL) -> dict[tuple[str, str, str | None], dict]:
    """(asset, check, partition) -> its latest execution, as the UI shows it."""
    latest: dict[tuple[str, str, str | None], dict] = {}
    for node in graphql(ASSET_CHECKS)["assetNodes"]:
        key = node["assetKey"]["path"]
        for check in node["assetChecksOrError"].get("checks", []):
            executions = graphql(EXECUTIONS, key={"path": key}, name=check["name"])
            for execution in executions["assetCheckExecutions"]:  # newest first
                latest.setdefault(("/".join(key), check["name"], execution["partition"]), execution)
    return latest


def test_no_check_fails_at_error_and_freshness_is_green(first_run):
    latest = _latest_check_results(first_run["graphql"])
    broken = {
        k: v
        for k, v in latest.items()
        if v["status"] == "EXECUTION_FAILED"
        or (v["status"] == "FAILED" and v["evaluation"]["severity"] == "ERROR")
    }
    assert broken == {}
    freshness = {k: v for k, v in latest.items() if k[1] == "freshness_check"}
    assert len(freshness) >= 10  # every daily asset's
    assert {v["status"] for v in freshness.values()} == {"SUCCEEDED"}
    # The demo's days passed their gates: the contracts' family checks, per partition.
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    gates = {k[1]: v for k, v in latest.items() if k[0] == "contracts" and k[2] == yesterday}
    assert {"completeness", "consistency", "validity", "timeliness"} <= set(gates)


def test_no_newcomer_modal_and_no_nux_folder(first_run):
    assert first_run["graphql"]("{ shouldShowNux }")["shouldShowNux"] is False
    assert not (first_run["home"] / ".nux").exists()


def test_the_demo_said_what_matters_once_and_the_second_run_skipped_everything(first_run):
    demo, again = first_run["demo"], first_run["again"]
    assert demo.stderr.count("DEVELOPMENT key") == 1
    assert "Report of the latest day" in demo.stdout
    assert f"{Path(sys.executable).parent / 'dg'} dev" in demo.stdout or (
        ".venv/bin/dg dev" in demo.stdout
    )
    assert "Already up to date, skipped" in again.stderr
    assert "materialise" not in again.stderr  # no run at all
    assert "Generating" not in again.stderr


def test_the_asset_graph_renders(first_run):
    browser = [
        *headless_chromium(first_run["root"] / "profile"),
        "--virtual-time-budget=25000",
        "--window-size=1600,1000",
    ]
    screenshot = first_run["root"] / "asset-graph.png"
    subprocess.run(
        [
            *browser,
            f"--screenshot={screenshot}",
            f"http://127.0.0.1:{first_run['port']}/asset-groups",
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000
    print(f"asset graph: {screenshot}")


# --- a pinned demo --------------------------------------------------------------------------------


def test_a_start_before_the_first_date_is_refused_in_one_line(tmp_path):
    env = _env(tmp_path)
    env["TELEMETRY_FIRST_DATE"] = "2025-06-01"
    done = _demo(env, "--start", "2025-05-30")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    assert "TELEMETRY_FIRST_DATE=2025-06-01" in line
    assert not (tmp_path / "lake" / "landing").exists()  # nothing was written


def test_a_pinned_demo_says_why_its_freshness_is_stale(tmp_path, monkeypatch):
    import dagster as dg

    env = _env(tmp_path)
    done = _demo(env, "--start", "2025-06-02", "--days", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "freshness checks fail (at WARN" in done.stderr
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        key = dg.AssetCheckKey(dg.AssetKey("request"), "freshness_check")
        record = instance.event_log_storage.get_asset_check_summary_records([key])[key]
        evaluation = record.last_completed_check_execution_record.event.asset_check_evaluation
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "--start 2025-06-02" in evaluation.description


def test_a_demo_of_another_window_starts_its_lake_again(tmp_path):
    # The default window moves a day every day, and a new sample rewrites the landing files the
    # earlier days were built from: re-ingested alone, a day would not balance against its
    # neighbours' ledgers (the blocking ledger check). The demo deletes its earlier lake instead.
    env = _env(tmp_path)
    first = _demo(env, "--start", "2025-06-03", "--days", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    second = _demo(env, "--start", "2025-06-02", "--days", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "The lake holds an earlier sample (2025-06-03.." in second.stderr
    rows = second.stdout.split("Quarantined lines")[0]
    assert "2025-06-02" in rows and "2025-06-03" in rows


def test_the_demo_does_not_write_over_landing_files_it_did_not_write(tmp_path):
    env = _env(tmp_path)
    foreign = tmp_path / "lake" / "landing" / "dt=2025-06-02" / "part-00000.jsonl"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("{}\n")
    done = _demo(env, "--start", "2025-06-02", "--days", "1")
    assert done.returncode == 1
    assert "holds files the demo did not write (no .telemetry-demo-lake)" in done.stderr
    assert foreign.read_text() == "{}\n"
