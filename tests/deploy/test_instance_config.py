"""The Dagster instance files: the local dagster.yaml keeps everything Dagster stores under
DAGSTER_HOME, whatever the working directory, and both it and deploy/dagster.yaml monitor runs
(a killed run is failed and its pool slots are freed; tests/defs/test_run_recovery.py runs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import yaml

from pipelines.lib.lake.paths import PROJECT_ROOT


@dg.asset
def greeting() -> str:
    print("hello from a step")  # captured into the compute logs
    return "hello"


def test_the_instance_stores_everything_under_dagster_home_from_any_directory(
    tmp_path, monkeypatch
):
    home, elsewhere = tmp_path / "dagster_home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.chdir(elsewhere)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([greeting], instance=instance)
        assert result.success
        run_id = result.run_id
        assert Path(instance.storage_directory()) == home / "storage"  # artefacts, IO manager
        assert Path(instance.compute_log_manager._base_dir) == home / "storage"
        assert instance.run_storage._conn_string == f"sqlite:///{home}/history/runs.db"
    assert (home / "history" / "runs" / f"{run_id}.db").exists()  # the run's event log
    assert (home / "schedules" / "schedules.db").exists()
    (out,) = (home / "storage" / run_id / "compute_logs").glob("*.out")
    assert "hello from a step" in out.read_text()
    assert list(elsewhere.iterdir()) == []


def test_the_local_instance_names_no_path_relative_to_the_working_directory():
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    # Dagster's defaults for these are under DAGSTER_HOME; a base_dir given here would be read
    # against each process's working directory.
    assert not {"storage", "local_artifact_storage", "compute_logs"} & set(config)
    assert "base_dir" not in yaml.safe_dump(config)


def test_dagsters_local_folders_are_git_ignored():
    for path in ("history/runs.db", "schedules/schedules.db", "storage/run/compute_logs/x.out"):
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", path], cwd=PROJECT_ROOT, check=False
        )
        assert ignored.returncode == 0, path


def test_both_instances_monitor_runs_and_free_the_slots_of_ended_runs(tmp_path):
    local = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["run_monitoring"]
    production = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())[
        "run_monitoring"
    ]
    for monitoring in (local, production):
        assert monitoring["enabled"] is True
        assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 60
        assert 0 < monitoring["poll_interval_seconds"] <= 60
    # Locally nothing but the max runtime fails a run whose code server died with it.
    assert local["max_runtime_seconds"] == 3600
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 3600
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 15
