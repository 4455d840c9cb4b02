"""A real PostgreSQL server for the production-instance tests: Debian's server binaries (`.ci/run`
installs the ``postgresql`` package), a throw-away cluster started on 127.0.0.1 for the session
and stopped after, like the moto server in tests/conftest.py."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci import missing_tool
from tests.conftest import free_port

PASSWORD = "telemetry-test"


def _bindir() -> Path | None:
    for initdb in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        return initdb.parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, str]]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for a fresh database."""
    bindir = _bindir()
    if bindir is None:
        # CI must exercise the production config, not skip it.
        missing_tool("PostgreSQL's server is not installed: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="telemetry-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    (folder / "pwfile").write_text(PASSWORD)
    os.chmod(folder / "pwfile", 0o644)
    data, port = folder / "data", free_port()
    env = {**os.environ, "PGPASSWORD": PASSWORD}

    def run(tool: str, *args: str) -> None:
        subprocess.run(
            [*as_owner, str(bindir / tool), *args],
            check=True, capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    run("initdb", "-D", str(data), "-U", "dagster", "-E", "UTF8", "--no-sync",
        "--auth=scram-sha-256", f"--pwfile={folder / 'pwfile'}")  # fmt: skip
    try:
        run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "start",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder}")  # fmt: skip
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster")
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": "dagster",
            "DAGSTER_PG_PASSWORD": PASSWORD,
        }
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
