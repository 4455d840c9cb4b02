"""The concurrency guard for real: the project's dagster.yaml, the daemon's run queue and three
submitted runs. Two runs of one partition never overlap; a run of another partition does not
wait for them (the limit is per partition, not global)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import DAY, event, line

DEFS_FILE = Path(__file__).with_name("concurrency_defs.py")
BIN = Path(sys.executable).parent
OTHER_DAY = DAY.replace(day=DAY.day + 1)


def _launch(home: Path, env: dict, partition: str) -> str:
    out = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-f", str(DEFS_FILE), "-j", "ingest_only",
         "--tags", json.dumps({"dagster/partition": partition})],
        cwd=home, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return out.stdout + out.stderr


@pytest.mark.slow
def test_two_runs_of_one_partition_never_overlap(lake, tmp_path):
    lake.land(DAY, "part-00000.jsonl", [line(event("request", DAY)) for _ in range(2000)])
    lake.land(
        OTHER_DAY, "part-00000.jsonl", [line(event("request", OTHER_DAY)) for _ in range(2000)]
    )
    home = tmp_path / "home"
    home.mkdir()
    # The project's instance config as it is (it stores everything under the home).
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TELEMETRY_LAKE_ROOT": str(lake.root)}
    for partition in (DAY, DAY, OTHER_DAY):
        _launch(home, env, partition.isoformat())

    os.environ["DAGSTER_HOME"] = str(home)
    cwd = os.getcwd()
    os.chdir(home)
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-f", str(DEFS_FILE)],
        cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with dg.DagsterInstance.get() as instance:
            records = instance.get_run_records()
            assert len(records) == 3
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                records = instance.get_run_records()
                if all(r.dagster_run.is_finished for r in records):
                    break
                time.sleep(1)
            runs = sorted(records, key=lambda r: r.create_timestamp)
            assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 3
            first, second, other = runs
            assert second.start_time >= first.end_time
            assert other.start_time < first.end_time
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        os.chdir(cwd)
        os.environ.pop("DAGSTER_HOME", None)
    assert len(lake.events("request", DAY)) == 2000
