"""Runs recover, for real: the project's dagster.yaml (with short monitoring intervals) in a
temporary DAGSTER_HOME, ``dagster-daemon run``, and a job whose op holds the only slot of the
``ingest`` pool.

* A run the daemon launched has its run worker killed with SIGKILL: the run becomes FAILURE and
  gives its slot back, so the next run of the pool, queued behind it, starts and succeeds.
* A command-line run (``dagster job execute``: no code server watches it) is killed: the daemon
  fails it once it passes ``max_runtime_seconds`` and frees its slot.

Before run monitoring was configured a killed run kept its slot and the next one waited for ever.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import stop

DEFS_FILE = Path(__file__).with_name("recovery_defs.py")
BIN = Path(sys.executable).parent
JOB = ["-f", str(DEFS_FILE), "-j", "ingest_pool_job"]
MAX_RUNTIME_S = 15

pytestmark = pytest.mark.slow


def _instance_config() -> dict:
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["run_monitoring"]["enabled"] is True
    # The project's intervals shortened so the test takes seconds, and one slot in the pool, so
    # one killed run is enough to block it (the project allows two: two kills did).
    config["run_monitoring"].update(
        poll_interval_seconds=1,
        free_slots_after_run_end_seconds=1,
        max_runtime_seconds=MAX_RUNTIME_S,
    )
    config["concurrency"]["pools"]["default_limit"] = 1
    return config


def _run_config(pid_file: Path, hold_s: float) -> dict:
    return {"ops": {"hold_ingest_slot": {"config": {"pid_file": str(pid_file), "hold_s": hold_s}}}}


@dataclass
class Dagster:
    home: Path
    work: Path  # the processes' working directory: not DAGSTER_HOME
    env: dict[str, str]
    daemon: subprocess.Popen
    log: Path

    def launch(self, pid_file: Path, hold_s: float) -> None:
        """Submit a run to the queue (the daemon starts it)."""
        launched = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", *JOB,
             "--config-json", json.dumps(_run_config(pid_file, hold_s))],
            cwd=self.work, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert launched.returncode == 0, launched.stderr[-3000:]

    def wait_for_pid(self, path: Path, process: subprocess.Popen | None = None) -> int:
        deadline = time.monotonic() + 120
        while not path.exists():
            ended = self.daemon.poll() is not None or (process and process.poll() is not None)
            if time.monotonic() > deadline or ended:
                pytest.fail(f"{path.name} never appeared\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return int(path.read_text())

    def claimed(self, instance: dg.DagsterInstance) -> list[str]:
        info = instance.event_log_storage.get_concurrency_info("ingest")
        return [slot.run_id for slot in info.claimed_slots]

    def until(self, condition: Callable[[], bool], timeout_s: float) -> float | None:
        """The time (``time.monotonic()``) at which ``condition()`` held, or None if it did not
        within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic()
            time.sleep(0.2)
        return None


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    root = tmp_path_factory.mktemp("recovery")
    home, work = root / "dagster_home", root / "elsewhere"
    home.mkdir()
    work.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_config()))
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # Create the SQLite storage once, before the daemon and the launcher race to create it.
    dg.DagsterInstance.from_config(str(home)).dispose()
    log = root / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", *JOB[:2]],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield Dagster(home, work, env, daemon, log)
    finally:
        stop(daemon)
    # Everything the instance stored is under DAGSTER_HOME, nothing in the working directory.
    assert (home / "history" / "runs.db").exists()
    assert list(work.iterdir()) == []


def test_a_killed_run_fails_and_frees_its_pool_slot_for_the_next_run(dagster, tmp_path):
    killed_pid_file, next_pid_file = tmp_path / "killed.pid", tmp_path / "next.pid"
    dagster.launch(killed_pid_file, hold_s=600)
    worker = dagster.wait_for_pid(killed_pid_file)
    # The run worker is a process of the daemon's (through its code server): ours to kill.
    assert os.getpgid(worker) == dagster.daemon.pid
    dagster.launch(next_pid_file, hold_s=0)  # waits behind the held slot

    with dg.DagsterInstance.from_config(str(dagster.home)) as instance:
        killed_run, next_run = (
            r.dagster_run.run_id
            for r in sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        )
        assert dagster.claimed(instance) == [killed_run]
        assert not next_pid_file.exists()
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()

        def status(run_id: str) -> dg.DagsterRunStatus:
            return instance.get_run_by_id(run_id).status

        failed = dagster.until(lambda: status(killed_run) == dg.DagsterRunStatus.FAILURE, 30)
        started = dagster.until(next_pid_file.exists, 60)
        dagster.until(lambda: instance.get_run_by_id(next_run).is_finished, 30)
        assert failed is not None and failed - killed_at < 10, dagster.log.read_text()[-3000:]
        assert started is not None and started - killed_at < 60, dagster.log.read_text()[-3000:]
        print(
            f"\nkilled run FAILURE {failed - killed_at:.1f} s after the kill; the next run's op "
            f"started {started - killed_at:.1f} s after it"
        )
        assert status(next_run) == dg.DagsterRunStatus.SUCCESS
        assert dagster.claimed(instance) == []


def test_a_killed_command_line_run_is_failed_after_the_max_runtime(dagster, tmp_path):
    pid_file = tmp_path / "cli.pid"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_run_config(pid_file, hold_s=600)))
    cli = subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", *JOB, "-c", str(config)],
        cwd=dagster.work, env=dagster.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert dagster.wait_for_pid(pid_file, cli) == cli.pid  # the command line is the worker
    finally:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()
    with dg.DagsterInstance.from_config(str(dagster.home)) as instance:
        (record,) = [r for r in instance.get_run_records() if not r.dagster_run.is_finished]
        run_id = record.dagster_run.run_id
        assert dagster.claimed(instance) == [run_id]
        failed = dagster.until(
            lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE, 60
        )
        assert failed is not None, dagster.log.read_text()[-3000:]
        ended = instance.get_run_record_by_id(run_id)
        assert MAX_RUNTIME_S <= ended.end_time - record.start_time < MAX_RUNTIME_S + 15
        assert dagster.until(lambda: dagster.claimed(instance) == [], 15) is not None
