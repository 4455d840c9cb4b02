"""`python -m pipelines.doctor` and the preflight every run makes (lib/setup/doctor_checks.py,
defs/executor.py): each configuration problem is one line naming the variable and the fix, the
exit code is 1, and nothing prints a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.lib.lake import settings
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.setup import doctor_checks as doctor
from tests.conftest import free_port, new_bucket

GOOD_KEY = "3f9a1c0e7b5d4a2f8e6c1b0a9d7f5e3c2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d"


def _env(tmp_path: Path, **settings_: str) -> dict[str, str]:
    """The process environment without any TELEMETRY_ setting of the caller's, a lake that
    exists, then ``settings_``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    lake = tmp_path / "lake"
    lake.mkdir(exist_ok=True)
    env["TELEMETRY_LAKE_ROOT"] = str(lake)
    env.update(settings_)
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """``argv`` run from the project root with ``env``, its output captured as text."""
    return subprocess.run(
        argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
    )


DG = str(Path(sys.executable).parent / "dg")


def _doctor(env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
    """Exit code, the ``error:`` lines, and all the output."""
    done = _run([sys.executable, "-m", "pipelines.doctor", *args], env, timeout=120)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    errors = [
        line.removeprefix("error: ") for line in output.splitlines() if line.startswith("error: ")
    ]
    return done.returncode, errors, output


def test_a_good_environment_passes(tmp_path):
    code, errors, output = _doctor(_env(tmp_path, TELEMETRY_PII_KEY=GOOD_KEY))
    assert (code, errors) == (0, []), output
    assert output.splitlines()[-1] == "doctor: no problems, 0 warning(s)"
    assert f"ok: lake root {tmp_path / 'lake'}" in output


def test_the_development_key_is_a_warning_not_a_problem(tmp_path):
    code, errors, output = _doctor(_env(tmp_path))
    assert (code, errors) == (0, []), output
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "TELEMETRY_PII_KEY is not set" in warnings[0]


def test_production_without_a_key(tmp_path):
    code, errors, _ = _doctor(_env(tmp_path, TELEMETRY_ENV="production"))
    assert code == 1
    assert errors == [
        "TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production: set TELEMETRY_PII_KEY to a "
        "secret of at least 32 bytes (e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        "), or TELEMETRY_PII_KEYS / TELEMETRY_PII_KEYS_FILE to a list of dated keys"
    ]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("short", "TELEMETRY_PII_KEY must be at least 32 bytes (got 5)"),
        ("a" * 40, "TELEMETRY_PII_KEY is one byte repeated 40 times"),
        ("abab" * 10, "TELEMETRY_PII_KEY has only 2 distinct bytes (at least 8): it is guessable"),
    ],
)
def test_a_weak_key(tmp_path, key, problem):
    code, errors, _ = _doctor(_env(tmp_path, TELEMETRY_PII_KEY=key))
    assert code == 1
    assert errors == [
        f"{problem}; generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
    ]


def test_the_public_development_key_in_production(tmp_path):
    env = _env(
        tmp_path,
        TELEMETRY_ENV="production",
        TELEMETRY_PII_KEY="x" + "telemetry-lake-development-key-DO-NOT-USE-IN-PROD",
    )
    code, errors, _ = _doctor(env)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith("TELEMETRY_PII_KEY is or contains the public development key")


def test_a_first_date_that_is_not_a_date(tmp_path):
    code, errors, _ = _doctor(_env(tmp_path, TELEMETRY_FIRST_DATE="2025-13-01"))
    assert code == 1
    assert errors == [
        "TELEMETRY_FIRST_DATE='2025-13-01' is not a date: set it as YYYY-MM-DD (e.g. 2025-01-01)"
    ]


def _today() -> date:
    """The doctor's today: read around each run of it, so a run across midnight UTC passes."""
    return datetime.now(UTC).date()


def test_a_first_date_in_the_future(tmp_path):
    before = _today()
    future = before + timedelta(days=30)
    code, errors, _ = _doctor(_env(tmp_path, TELEMETRY_FIRST_DATE=future.isoformat()))
    assert code == 1
    assert errors in [
        [
            f"TELEMETRY_FIRST_DATE={future} is in the future (today is {today} UTC), so there is "
            "no daily partition yet: set it to the first day of your data, e.g. 2025-01-01 (the "
            "default)"
        ]
        for today in {before, _today()}
    ]


def test_a_partition_before_the_first_date_names_the_variable(tmp_path):
    env = _env(tmp_path, TELEMETRY_FIRST_DATE="2025-06-01")
    code, errors, output = _doctor(env, "--partition", "2025-05-20", "--partition", "2025-06-02")
    assert code == 1
    assert errors == [
        "partition 2025-05-20 is before the first daily partition, TELEMETRY_FIRST_DATE="
        "2025-06-01: set TELEMETRY_FIRST_DATE to 2025-05-20 or earlier to build it (it is read "
        "when the definitions load: reload the code location after changing it)"
    ]
    assert "ok: partition 2025-06-02 exists" in output
    today = _today()
    code, errors, _ = _doctor(env, "--partition", today.isoformat())
    assert code == 1 and errors[0].startswith(f"partition {today} has not ended yet")


def test_a_missing_lake_root_reuses_the_lake_root_message(tmp_path):
    missing = tmp_path / "no-lake"
    code, errors, _ = _doctor(_env(tmp_path, TELEMETRY_LAKE_ROOT=str(missing)))
    assert code == 1
    assert errors == [
        f"the lake root {missing} does not exist: set TELEMETRY_LAKE_ROOT to the lake's folder, or "
        "create it first (`python -m pipelines.demo` builds data/lake; `python -m pipelines.sample "
        "--root <folder>` writes sample landing files there)"
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"TELEMETRY_DUCKDB_MEMORY_LIMIT": "2"},
            "TELEMETRY_DUCKDB_MEMORY_LIMIT='2' is not a size: set a number and a unit (KB, MB, GB, "
            "TB or KiB, MiB, GiB, TiB), e.g. 2GB (the default)",
        ),
        (
            {"TELEMETRY_DUCKDB_MEMORY_LIMIT": "2MB"},
            "TELEMETRY_DUCKDB_MEMORY_LIMIT='2MB' is below 64MiB, too little for DuckDB to stage a "
            "day: set it to e.g. 2GB (the default); a 1M-line day needs about 200MB",
        ),
        (
            {"TELEMETRY_DUCKDB_MEMORY_LIMIT": "1000TB"},
            re.compile(
                r"TELEMETRY_DUCKDB_MEMORY_LIMIT=1000TB is not below the memory here \([\d.]+GiB\): "
                r"DuckDB would be killed before it spills; set it to at most [\d.]+GiB \(each run "
                r"also needs about 1 GB of its own\)"
            ),
        ),
        (
            {"TELEMETRY_DUCKDB_THREADS": "two"},
            "TELEMETRY_DUCKDB_THREADS='two' is not a whole number of at least 1: set it to the "
            "cores a run may use, e.g. 2 (the default)",
        ),
    ],
)
def test_memory_settings(tmp_path, variables, expected):
    code, errors, _ = _doctor(_env(tmp_path, **variables))
    assert code == 1 and len(errors) == 1, errors
    if isinstance(expected, str):
        assert errors[0] == expected
    else:
        assert expected.fullmatch(errors[0]), errors[0]


def test_every_problem_is_listed_at_once(tmp_path):
    env = _env(
        tmp_path,
        TELEMETRY_ENV="production",
        TELEMETRY_FIRST_DATE="June",
        TELEMETRY_DUCKDB_MEMORY_LIMIT="lots",
        TELEMETRY_LEASE_TTL_S="1",
        TELEMETRY_EXECUTOR="celery",
    )
    code, errors, _ = _doctor(env)
    assert code == 1
    named = ["TELEMETRY_FIRST_DATE", "TELEMETRY_LEASE_TTL_S", "TELEMETRY_PII_KEY"]
    named += ["TELEMETRY_DUCKDB_MEMORY_LIMIT", "TELEMETRY_EXECUTOR"]
    assert [next(v for v in named if v in e) for e in errors] == named


def test_an_s3_endpoint_that_cannot_be_reached(tmp_path, s3_credentials):
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path, TELEMETRY_LAKE_ROOT="s3://lake/prefix", TELEMETRY_S3_ENDPOINT_URL=endpoint)
    code, errors, _ = _doctor(env)
    assert code == 1
    assert errors == [
        f"the S3 endpoint {endpoint} could not be reached (TELEMETRY_LAKE_ROOT=s3://lake/prefix): "
        "check TELEMETRY_S3_ENDPOINT_URL and the network to it"
    ]
    # --no-network leaves the endpoint alone.
    assert _doctor(env, "--no-network")[:2] == (0, [])


def test_an_s3_bucket_that_does_not_exist_and_one_that_does(tmp_path, s3_endpoint, s3_credentials):
    env = _env(
        tmp_path,
        TELEMETRY_LAKE_ROOT="s3://no-such-bucket-doctor/lake",
        TELEMETRY_S3_ENDPOINT_URL=s3_endpoint,
    )
    code, errors, _ = _doctor(env)
    assert code == 1
    assert errors == [
        f"the S3 bucket 'no-such-bucket-doctor' does not exist at {s3_endpoint} "
        "(list_objects_v2): set TELEMETRY_LAKE_ROOT to s3://<an existing bucket>/<prefix> (and "
        "TELEMETRY_S3_ENDPOINT_URL to its endpoint), or create the bucket"
    ]
    env["TELEMETRY_LAKE_ROOT"] = f"s3://{new_bucket(s3_endpoint)}/lake"
    code, errors, output = _doctor(env)
    assert (code, errors) == (0, []), output
    assert f"(S3 at {s3_endpoint}: answered)" in output


def test_the_checks_never_raise():
    # Whatever the environment holds, a finding per problem, never an exception.
    env = {
        "TELEMETRY_PII_KEYS": "[",
        "TELEMETRY_LAKE_ROOT": "ftp://x",
        "TELEMETRY_S3_RETRIES": "-1",
    }
    findings = doctor.check(env, date(2026, 1, 1), probe_s3=False)
    errors = [f.message for f in findings if f.level == doctor.ERROR]
    assert any(e.startswith("TELEMETRY_PII_KEYS is not valid JSON") for e in errors)
    assert "TELEMETRY_LAKE_ROOT='ftp://x': use a local path or s3://bucket/prefix" in errors
    assert any(e.startswith("TELEMETRY_S3_RETRIES=-1 is out of range") for e in errors)
    assert all("\n" not in f.message for f in findings)


def test_settings_are_validated_as_the_resources_validate_them():
    assert settings.duckdb_memory_limit("2GB") == 2 * 1000**3
    assert settings.duckdb_memory_limit("1.5 GiB") == 3 << 29
    assert settings.duckdb_memory_limit("512mb") == 512 * 1000**2
    assert settings.duckdb_threads("4") == 4
    with pytest.raises(ConfigError):
        settings.duckdb_threads(0)


@pytest.mark.slow
def test_a_run_fails_before_its_first_step_with_one_failure(tmp_path):
    """``dg launch`` (the docs' command) of a run with a configuration problem: the run fails in
    its preflight with the problem as its one error; no resource is built and no step starts."""
    home = tmp_path / "home"
    home.mkdir()
    env = _env(
        tmp_path,
        TELEMETRY_ENV="production",
        TELEMETRY_EXECUTOR="in_process",
        TELEMETRY_CATALOG=str(tmp_path / "lake.duckdb"),
        DAGSTER_HOME=str(home),
    )
    done = _run([DG, "launch", "--assets", "catalog"], env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert (
        "Failure: TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production: set "
        "TELEMETRY_PII_KEY" in output
    ), output
    for absent in ("STEP_START", "RESOURCE_INIT", "DagsterResourceFunctionError", "ConfigError"):
        assert absent not in output, output
    assert not (tmp_path / "lake.duckdb").exists()


def test_a_bad_first_date_stops_dg_launch_with_one_line(tmp_path):
    """The partitions read TELEMETRY_FIRST_DATE as definitions load: the CLI ends with the one
    line of the ConfigError (pipelines/definitions.py), not Dagster's 200-line load traceback."""
    env = _env(tmp_path, TELEMETRY_FIRST_DATE="2025-13-01", DAGSTER_HOME=str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = _run([DG, "launch", "--assets", "request"], env, timeout=180)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "telemetry-lake: TELEMETRY_FIRST_DATE='2025-13-01' is not a date: set it as YYYY-MM-DD "
        "(e.g. 2025-01-01)"
    )


def test_make_dev_checks_the_configuration_before_dagster_starts(tmp_path):
    env = _env(tmp_path, TELEMETRY_FIRST_DATE="2025-13-01", DAGSTER_HOME=str(tmp_path))
    done = _run(
        [sys.executable, "-m", "pipelines.dev", "-h", "127.0.0.1", "-p", str(free_port())],
        env,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: TELEMETRY_FIRST_DATE='2025-13-01' is not a date: set it as YYYY-MM-DD "
        "(e.g. 2025-01-01)"
    ]
    assert not (tmp_path / "history").exists()  # no Dagster service started
