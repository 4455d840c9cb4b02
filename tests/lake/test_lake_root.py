"""The lake root names the lake, or the run fails (lib/lake/lake_root.py): a relative
TELEMETRY_LAKE_ROOT is a folder of the project whatever the working directory (and the run logs
where it resolved), a root that does not exist is refused in one line naming the variable, and a
missing S3 bucket is named, not left to botocore."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pipelines.defs import resources
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.lake import settings
from pipelines.lib.lake.lake_root import LakeRootError
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from tests.conftest import DAY, event, line, new_bucket


def _ingest(lake: LakeResource) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [build_ingest_assets(daily_partitions())],
        partition_key=DAY.isoformat(),
        resources={
            "lake": lake,
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
        },
        raise_on_error=False,
        instance=instance,
    )
    return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The innermost error of the run's failures (Dagster wraps ours in its own), one per line."""
    messages = []
    for failure in (e for e in result.all_events if e.is_failure):
        error = failure.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        messages.append(error.message.strip())
    return "\n".join(messages)


def test_a_relative_root_resolves_against_the_project_from_any_working_directory(
    lake, tmp_path, monkeypatch
):
    lake.land(DAY, "a.jsonl", [line(event("request")) for _ in range(7)])
    relative = os.path.relpath(lake.root, PROJECT_ROOT)
    assert not os.path.isabs(relative)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert settings.lake_root(relative, "/unused") == str(lake.root)
    assert LakeResource(root=relative).lake().root == str(lake.root)
    result, logs = _ingest(LakeResource(root=relative))

    assert result.success
    assert len(lake.events("request")) == 7
    assert (
        f"lake root: {lake.root} (TELEMETRY_LAKE_ROOT={relative!r} is relative: resolved against "
        "the project root, not the working directory)"
    ) in logs
    assert list(elsewhere.iterdir()) == []  # no second lake beside the working directory


def test_a_missing_root_is_refused_in_one_line_naming_the_variable(tmp_path, monkeypatch):
    missing = tmp_path / "no-lake"
    result, _ = _ingest(LakeResource(root=str(missing)))
    assert not result.success
    message = _failure(result)
    assert message.splitlines()[0] == (
        f"pipelines.lib.lake.lake_root.LakeRootError: the lake root {missing} does not exist: set "
        "TELEMETRY_LAKE_ROOT to the lake's folder, or create it first (`python -m pipelines.demo` "
        "builds data/lake; `python -m pipelines.sample --root <folder>` writes sample landing "
        "files there)"
    )
    assert not missing.exists()

    # Set through the environment, relative: the message says what it was resolved to.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", "no-such-lake")
    lake = resources.defs().resources["lake"]
    with (
        pytest.raises(dg.DagsterResourceFunctionError) as failed,
        dg.build_resources({"lake": lake}),
    ):
        pass
    refused = failed.value.__cause__
    assert isinstance(refused, LakeRootError)
    resolved = PROJECT_ROOT / "no-such-lake"
    assert str(refused) == (
        f"the lake root {resolved} does not exist (TELEMETRY_LAKE_ROOT='no-such-lake', resolved "
        "against the project root): set TELEMETRY_LAKE_ROOT to the lake's folder, or create it "
        "first (`python -m pipelines.demo` builds data/lake; `python -m pipelines.sample --root "
        "<folder>` writes sample landing files there)"
    )
    assert not resolved.exists() and not (tmp_path / "no-such-lake").exists()


def test_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "lake").write_text("not a lake")
    result, _ = _ingest(LakeResource(root=str(tmp_path / "lake")))
    assert not result.success
    assert f"the lake root {tmp_path / 'lake'} is not a folder: set TELEMETRY_LAKE_ROOT" in (
        _failure(result)
    )


def test_the_sample_generator_creates_a_lake_runs_accept(tmp_path):
    root = tmp_path / "new-lake"
    generate(SampleConfig(start=DAY, days=1, requests_per_day=20), str(root))
    result, _ = _ingest(LakeResource(root=str(root)))
    assert result.success


def test_a_missing_bucket_is_named_with_the_variable(s3_endpoint, s3_credentials):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    expected = (
        f"the S3 bucket '{bucket}' does not exist at {s3_endpoint} (list_objects_v2): set "
        "TELEMETRY_LAKE_ROOT to s3://<an existing bucket>/<prefix> (and TELEMETRY_S3_ENDPOINT_URL "
        "to its endpoint), or create the bucket"
    )
    lake = Lake(f"s3://{bucket}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}})
    # A listing used to find an empty folder here, and the run went on over nothing.
    with pytest.raises(LakeRootError) as refused:
        lake.list_files("landing/dt=2025-06-02")
    assert str(refused.value) == expected
    assert refused.value.__cause__ is None and refused.value.__context__ is None  # no botocore

    # The ingest run fails on its first request (the partition lease), naming the bucket.
    result, _ = _ingest(LakeResource(root=f"s3://{bucket}/lake", s3_endpoint_url=s3_endpoint))
    assert not result.success
    message = _failure(result)
    assert f"the S3 bucket '{bucket}' does not exist at {s3_endpoint}" in message
    assert "TELEMETRY_LAKE_ROOT" in message and "botocore" not in message

    # An existing bucket with nothing under the prefix is an empty lake, not an error.
    present = Lake(
        f"s3://{new_bucket(s3_endpoint)}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}}
    )
    assert present.list_files("landing/dt=2025-06-02") == []


def test_the_default_root_is_the_project_data_folder():
    assert settings.lake_root(None, str(Path("/x"))) == "/x"
    assert settings.lake_root("data/lake", "/x") == str(PROJECT_ROOT / "data" / "lake")
    assert settings.lake_root("s3://bucket/lake", "/x") == "s3://bucket/lake"
