"""Private run folders (pipelines/lib/lake/workdir.py): DuckDB's spill files and staged uploads live
in a 0700 folder of their run under the work root, removed when the run ends, and a run killed
with SIGKILL leaves nothing the next run does not sweep. The end-to-end test kills a spilling
ingest and scans every byte it could have left for the raw user ids it was given."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.defs.resources import DuckDBSettings, LakeResource
from pipelines.lib.lake import settings, workdir
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.sql import connect, lake_connection
from pipelines.lib.lake.storage import Lake
from tests.conftest import DAY, KEY, LakeHelper, event, line

# --- the folder of one run -------------------------------------------------------------------


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith(workdir.RUN_PREFIX))


def test_a_run_folder_is_private_and_removed_when_the_block_ends(tmp_path):
    root = tmp_path / "work"
    with workdir.private_run_dir(root) as run:
        assert run.parent == root
        assert run.name.startswith(f"{workdir.RUN_PREFIX}{os.getpid()}-")
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        assert (run / workdir.LOCK_FILE).is_file()
        (run / "spill.tmp").write_bytes(b"rows")
    assert not run.exists()
    assert _run_dirs(root) == []


def test_a_run_folder_is_removed_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError), workdir.private_run_dir(tmp_path) as run:
        (run / "spill.tmp").write_bytes(b"rows")
        raise RuntimeError("the run failed")
    assert not run.exists()


def test_the_folder_is_0700_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        with workdir.private_run_dir(tmp_path / "work") as run:
            assert stat.S_IMODE(run.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "work").stat().st_mode) == 0o700
    finally:
        os.umask(previous)


# --- telling a dead run's folder from a live one ------------------------------------------------


def test_a_sweep_removes_folders_nobody_holds_and_keeps_live_ones(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    dead = root / "run-999999-deadbeef0000"  # its process died: the lock file is free
    dead.mkdir()
    (dead / workdir.LOCK_FILE).touch()
    (dead / "duckdb_temp_storage-0.tmp").write_bytes(b"raw lines")
    unfinished = root / "run-999998-deadbeef0001"  # killed between mkdir and its lock file
    unfinished.mkdir()
    other = root / "notes"  # not a run folder: never touched
    other.mkdir()
    with workdir.private_run_dir(root) as mine, workdir.private_run_dir(root) as nested:
        # Both live (locks held by this process, through two open files) while the block runs.
        assert workdir.sweep_stale(root) == []
        assert mine.is_dir() and nested.is_dir()
    assert not dead.exists() and not unfinished.exists()  # swept when `mine` started
    assert other.is_dir()
    assert workdir.sweep_stale(root) == []


_HOLD = """
import sys
from pipelines.lib.lake import workdir
with workdir.private_run_dir(sys.argv[1]) as run:
    print(run, flush=True)
    sys.stdin.readline()
"""


def test_a_folder_held_by_another_live_process_is_kept_then_swept_once_it_is_killed(tmp_path):
    root = tmp_path / "work"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None
        theirs = Path(holder.stdout.readline().strip())
        assert theirs.name.startswith(f"{workdir.RUN_PREFIX}{holder.pid}-")
        assert workdir.sweep_stale(root) == []
        with workdir.private_run_dir(root):
            assert theirs.is_dir()
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs
        holder.wait()
    assert theirs.is_dir()
    assert workdir.sweep_stale(root) == [theirs]
    assert not theirs.exists()


# --- DuckDB spills there and nowhere else -----------------------------------------------------


def test_a_lake_connection_spills_into_a_private_folder_under_the_work_root(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert lake.work_root == tmp_path / "lake" / "_work" / "tmp"
    with lake_connection(lake, "64MB", 1) as con:
        [(spill,)] = con.execute("select current_setting('temp_directory')").fetchall()
        spill_dir = Path(spill)
        assert spill_dir.parent == lake.work_root
        assert stat.S_IMODE(spill_dir.stat().st_mode) == 0o700
        # Big enough to spill at 64 MB: it completes, through the folder.
        [(n,)] = con.execute(
            "select count(*) from (select md5(i::varchar) m from range(2000000) t(i) order by m)"
        ).fetchall()
        assert n == 2_000_000
    assert not spill_dir.exists()


def test_a_connection_without_a_run_folder_never_spills_to_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    con = connect("32MB", 1)
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(
            "select count(*) from (select md5(i::varchar) m from range(3000000) t(i) order by m)"
        ).fetchall()
    con.close()
    assert list(tmp_path.iterdir()) == []  # DuckDB's default would have been ./.tmp


def test_the_work_root_is_configured_once_on_the_lake(tmp_path):
    configured = LakeResource(root=str(tmp_path / "lake"), work_root=str(tmp_path / "w")).lake()
    assert configured.work_root == tmp_path / "w"
    # Off a local disk (S3; memory:// stands in here) the default is the system temp dir's.
    assert (
        Lake("memory://bucket/lake").work_root
        == Path(tempfile.gettempdir()) / f"telemetry-lake-{os.getuid()}"
    )


def test_a_relative_work_root_fails_naming_the_variable():
    with pytest.raises(ConfigError) as caught:
        settings.work_root("scratch/tmp")
    assert str(caught.value) == (
        "TELEMETRY_WORK_ROOT='scratch/tmp' is not an absolute path: set it to an absolute folder "
        "on a local disk, e.g. /scratch/telemetry-lake"
    )
    assert settings.work_root("  ") is None


def test_the_retired_spill_variable_fails_saying_what_replaced_it():
    with pytest.raises(ConfigError) as caught:
        DuckDBSettings(temp_directory="/scratch").setup_for_execution(None)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "TELEMETRY_DUCKDB_TEMP_DIRECTORY='/scratch' is no longer read: set "
        "TELEMETRY_WORK_ROOT='/scratch' instead (each run spills into a private folder under it, "
        "removed when the run ends) and unset TELEMETRY_DUCKDB_TEMP_DIRECTORY"
    )


def test_an_unwritable_work_root_fails_naming_the_variable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with (
        pytest.raises(workdir.WorkRootError, match="set TELEMETRY_WORK_ROOT to a folder"),
        workdir.private_run_dir(blocker / "work"),
    ):
        pass


# --- kill -9 during a spilling ingest ----------------------------------------------------------

LINES = 200_000  # about 66 MB of landing: an ingest at 128 MB spills while staging it
MEMORY_LIMIT = "128MB"

_INGEST = """
import sys
from datetime import date
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.pii import DEV_KEY
from pipelines.lib.lake.storage import Lake
ingest_partition(
    Lake(sys.argv[1]), date.fromisoformat(sys.argv[2]), PiiKey(DEV_KEY),
    IngestSettings(memory_limit=sys.argv[3]),
)
"""


def _files_holding(folder: Path, marker: bytes, skip: Path | None = None) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and not path.is_symlink():
            try:
                if marker in path.read_bytes():
                    found.append(path)
            except (FileNotFoundError, PermissionError):  # removed meanwhile
                continue
    return found


def test_a_killed_spilling_ingest_leaves_no_raw_id_once_the_next_run_starts(tmp_path):
    marker = f"rawid-{secrets.token_hex(8)}-".encode()  # every planted user id starts with it
    helper = LakeHelper(tmp_path / "lake")
    folder = tmp_path / "lake" / "landing" / f"dt={DAY}"
    folder.mkdir(parents=True)
    doc = event("impression")
    with open(folder / "big.jsonl", "wb") as out:
        for i in range(LINES):
            doc["event_id"] = f"00000000-0000-4000-8000-{i:012d}"
            doc["user_id"] = f"{marker.decode()}{i % 1000:04d}"
            out.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    work_root = helper.lake.work_root
    system_tmp, cwd = tmp_path / "system-tmp", tmp_path / "cwd"
    system_tmp.mkdir()
    cwd.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(system_tmp),  # the child's system temp dir, scanned below
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _INGEST, str(helper.root), DAY.isoformat(), MEMORY_LIMIT],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    spilled: list[Path] = []
    run_mode = None
    try:
        deadline = time.monotonic() + 45
        while not spilled and child.poll() is None and time.monotonic() < deadline:
            if work_root.is_dir():
                for run in _run_dirs(work_root):
                    holding = [
                        p
                        for p in _files_holding(run, marker)
                        if p.name.startswith("duckdb_temp") or p.suffix == ".tmp"
                    ]
                    if holding:
                        spilled, run_mode = holding, stat.S_IMODE(run.stat().st_mode)
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate()
    assert spilled, f"the ingest never spilled a raw id (exit {child.returncode}): {stderr[-2000:]}"
    assert child.returncode == -signal.SIGKILL
    assert run_mode == 0o700
    # The kill left the raw lines on disk: the very files this issue is about.
    assert all(p.exists() for p in spilled)
    [killed_run] = {p.parent for p in spilled}

    # The next run (another day's ingest, in this process) sweeps the dead run's folder first.
    other_day = DAY + timedelta(days=10)
    helper.land(other_day, "small.jsonl", [line(event("click", other_day))])
    assert helper.ingest(other_day, keys=KEY).rows_total == 1
    assert not killed_run.exists()
    assert _run_dirs(work_root) == []
    assert _files_holding(work_root, marker) == []
    assert _files_holding(system_tmp, marker) == []
    assert _files_holding(cwd, marker) == []
    # Nowhere else either: only landing/ may hold raw ids.
    assert _files_holding(tmp_path, marker, skip=folder) == []


def test_a_work_root_others_may_write_or_own_is_refused(tmp_path: Path) -> None:
    """Someone who can write to the root could swap a run folder for a link to their own, and
    read the spill files written there."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)
    with (
        pytest.raises(workdir.WorkRootError, match="writable by no one else"),
        workdir.private_run_dir(shared),
    ):
        pass
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    if os.getuid() == 0:  # CI runs as root: give the folder away to see it refused
        os.chown(theirs, 65534, 65534)
        with (
            pytest.raises(workdir.WorkRootError, match="owned by uid 65534"),
            workdir.private_run_dir(theirs),
        ):
            pass
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    with workdir.private_run_dir(mine) as run:
        assert run.parent == mine


def test_the_default_work_root_of_an_s3_lake_is_per_user() -> None:
    assert workdir.default_work_root(None).name == f"telemetry-lake-{os.getuid()}"
