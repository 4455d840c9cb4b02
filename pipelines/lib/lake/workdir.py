"""Private scratch folders for runs: where DuckDB spills, and where files wait before an upload.

DuckDB spills raw landing lines (and hashed rows) to its temporary directory when a query
outgrows the memory limit; staged uploads to S3 hold whole files. A ``kill -9`` leaves such files
behind, so every one of them lives in a folder of its own run:

* ``{work root}/run-<pid>-<random>/``, mode 0700, created by ``private_run_dir`` and removed
  when the block ends (normally or by an exception);
* while the run lives it holds an exclusive ``flock`` on ``.lock`` inside that folder. The kernel
  drops the lock when the process dies, however it dies, so a folder whose lock can be taken
  belongs to no living process: ``sweep_stale`` removes it. ``private_run_dir`` sweeps before it
  creates, so whatever killed runs left behind goes when the next run starts. The pid in the name
  is for people only (pids are reused, locks are not).
* Creating a folder and taking its lock happen under a shared ``flock`` on the work root itself,
  and a sweep holds it exclusively, so a sweep never sees a new folder before its lock is held.

The work root is ``TELEMETRY_WORK_ROOT`` (read by the lake resource); by default
``{lake root}/_work/tmp`` for a local lake (the lake's own disk and permissions) and
``{system temp dir}/telemetry-lake`` for an S3 lake. Locks are ``flock``: keep the work root on a
local filesystem. No Dagster here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

WORK_ROOT_VARIABLE = "TELEMETRY_WORK_ROOT"
RUN_PREFIX = "run-"
LOCK_FILE = ".lock"
LOCAL_WORK_DIR = "_work/tmp"  # under a local lake's root
SHARED_WORK_DIR = "telemetry-lake"  # under the system temp dir, for lakes on S3
RUN_DIR_MODE = 0o700


class WorkRootError(OSError):
    """The work root cannot hold private run folders; the message names the variable to set."""


def default_work_root(local_lake_base: str | None) -> Path:
    """``{lake}/_work/tmp`` for a local lake (its base path), else the system temp dir's
    ``telemetry-lake/`` (for S3)."""
    if local_lake_base:
        return Path(local_lake_base) / LOCAL_WORK_DIR
    # One folder per user: a shared name in /tmp could be created first by someone else.
    return Path(tempfile.gettempdir()) / f"{SHARED_WORK_DIR}-{os.getuid()}"


def check_work_root(value: str) -> Path:
    """A configured work root: an absolute path (DuckDB would read a relative one against each
    process's working directory)."""
    path = Path(value.strip())
    if not path.is_absolute():
        raise WorkRootError(
            f"{WORK_ROOT_VARIABLE}={value!r} is not an absolute path: set it to an absolute "
            "folder on a local disk, e.g. /scratch/telemetry-lake"
        )
    return path


@contextlib.contextmanager
def private_run_dir(work_root: str | Path) -> Iterator[Path]:
    """A new folder only this process can enter (0700), under ``work_root``, removed when the
    block ends; stale folders of dead runs are swept first."""
    root = _ensure_root(Path(work_root))
    sweep_stale(root)
    with _root_lock(root, fcntl.LOCK_SH):
        path = root / f"{RUN_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            os.mkdir(path, RUN_DIR_MODE)
        except PermissionError as exc:
            raise _unusable(root, exc) from exc
        os.chmod(path, RUN_DIR_MODE)  # whatever the umask
        lock = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield path
    finally:
        # Removed while the lock is held: no sweep can take the folder for a dead one meanwhile.
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def sweep_stale(work_root: str | Path) -> list[Path]:
    """Remove the run folders under ``work_root`` whose lock no process holds (their run died);
    returns them. Folders of live runs, this process's included, are left alone."""
    root = Path(work_root)
    if not root.is_dir():
        return []
    removed = []
    with _root_lock(root, fcntl.LOCK_EX):
        for entry in os.scandir(root):
            if not entry.name.startswith(RUN_PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            with _lock_if_dead(Path(entry.path)) as dead:
                if dead:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def _lock_if_dead(folder: Path) -> Iterator[bool]:
    """Whether ``folder``'s run is dead, holding its lock through the block if so."""
    try:
        lock = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        # Every folder gets its lock file under the root lock, before any sweep can look at it:
        # without one, its run died while creating it (or the folder is not ours to keep).
        yield True
        return
    except OSError:  # another user's folder, or not a regular file: not ours to judge
        yield False
        return
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False  # a live run holds it
            return
        yield True
    finally:
        os.close(lock)


@contextlib.contextmanager
def _root_lock(root: Path, operation: int) -> Iterator[None]:
    handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, operation)
        yield
    finally:
        os.close(handle)


def _ensure_root(root: Path) -> Path:
    try:
        root.mkdir(mode=RUN_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(root, exc) from exc
    info = os.stat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise WorkRootError(
            f"work root {root} is not a folder: set {WORK_ROOT_VARIABLE} to a folder on a local "
            "disk"
        )
    # Another user who owns the root, or may write to it, can swap a run folder for a link to a
    # folder of theirs and read the spill files (raw landing lines) written there.
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WorkRootError(
            f"work root {root} is owned by uid {info.st_uid} with mode "
            f"{stat.filemode(info.st_mode)}: it must belong to this user (uid {os.getuid()}) "
            f"and be writable by no one else; set {WORK_ROOT_VARIABLE} to such a folder"
        )
    return root


def _unusable(root: Path, exc: OSError) -> WorkRootError:
    return WorkRootError(
        f"cannot create a private run folder under the work root {root} "
        f"({exc.strerror or exc}): set {WORK_ROOT_VARIABLE} to a folder this user can write"
    )
