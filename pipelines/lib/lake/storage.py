"""One filesystem API over a local folder and ``s3://``: list, read, and publish atomically.

Atomic publish is the rule every writer follows: a reader sees the previous version or the new
one, never a half-written one, and a crash leaves the previous version in place. The unit is the
partition folder (``events/event_type=T/event_date=D/``): readers take every ``*.parquet`` in it,
and compaction may split a partition into several files, so a writer replaces the folder's whole
contents (``staged_dir``; ``write_parquet``/``write_table`` publish their file as the folder's only
file). A re-ingest after a compaction therefore cannot leave stale part files beside its own.

* local: the new files are written in ``{root}/.staging/<target>.<token>/`` (same filesystem, out
  of every reader's glob), fsynced, then swapped in with one ``renameat2(RENAME_EXCHANGE)``: a
  reader opening the folder sees all old files or all new ones. The first publish of a folder is a
  ``renameat2(RENAME_NOREPLACE)``. The old contents, now at the staging path, are then removed.
  Where renameat2 is missing (not Linux, or a filesystem without it) two renames are used instead:
  old folder aside, new folder in; between them a reader finds no folder (the partition looks not
  yet built, a read fails or skips it), never a mix. Staging left by a crash is removed by the
  next publish of the same folder.
* S3 (no rename): a partition is always one object under a deterministic name (``PART_FILE``:
  ingest, rollups, erasure rewrites and, on S3, compaction all write exactly that file), so a
  re-materialisation is one PUT that replaces it, visible whole or not at all: a reader, the
  catalog's views and a raw ``*.parquet`` glob alike see the old rows or the new ones, never both,
  and a retried write lands on the same key, never beside it. We chose deterministic names over a
  manifest per partition because one object per partition needs no reader to learn a protocol
  (every glob, DuckDB view and external tool stays correct); the price is no splitting of a
  partition into several files on S3 (a large day is one file of many row groups). After the PUT,
  keys of the folder outside the new set are deleted: only files of another layout (a folder
  compacted on a local lake, then copied) are ever there, and until that delete a raw glob sees
  them beside the new file.

``staged_file`` keeps the single-file publish (``os.replace``) for files outside partitions, such
as the analysts' catalog.

A day's seven ingest tables are published together on top of these pieces (``lib/lake/publish.py``:
staged under ``_publish/staging/``, then a journal, then ``exchange_folders`` or S3 copies).

Scratch space (files staged for an S3 upload, DuckDB's spill files through ``sql.lake_connection``)
lives in private run folders under the lake's work root (``lib/lake/workdir.py``), removed when the
block ends and swept after a crash.

Every S3 request waits a bounded time (``S3Timeouts``: connect and read timeouts, a fixed number
of retries; ``lib/lake/s3.py``), and an endpoint that stops answering fails with ``S3EndpointError``
naming it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.lake import workdir

# The process's own C library: renameat2 is looked up on it (glibc 2.28+).
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the lake root
    size_bytes: int


@dataclass(frozen=True)
class S3Timeouts:
    """How long one S3 request may wait: to connect, then for each read of the answer, and how
    many times it is retried after a failed attempt (``TELEMETRY_S3_CONNECT_TIMEOUT_S``,
    ``TELEMETRY_S3_READ_TIMEOUT_S``, ``TELEMETRY_S3_RETRIES``, checked in
    ``lib/lake/settings.py``)."""

    connect_s: float = 10.0
    read_s: float = 60.0
    retries: int = 3

    def config_kwargs(self) -> dict[str, Any]:
        """s3fs's ``config_kwargs`` (botocore's ``Config``): standard-mode retries, so only
        botocore retries (``lib/lake/s3.py``)."""
        return {
            "connect_timeout": self.connect_s,
            "read_timeout": self.read_s,
            "retries": {"max_attempts": self.retries, "mode": "standard"},
        }


class Lake:
    """The lake root and the filesystem it lives on. Paths passed in are relative to the root.
    ``work_root`` is where runs keep private scratch folders (``TELEMETRY_WORK_ROOT``; by default
    ``{root}/_work/tmp`` for a local lake, the system temp dir's ``telemetry-lake/`` for S3)."""

    def __init__(
        self,
        root: str,
        storage_options: dict[str, Any] | None = None,
        work_root: str | Path | None = None,
        s3_timeouts: S3Timeouts | None = None,
    ):
        if not root:
            raise ValueError("the lake root is empty: set TELEMETRY_LAKE_ROOT")
        self.root = root.rstrip("/")
        if self.root.startswith("s3://"):
            self.fs, self._base = _s3_filesystem(self.root, storage_options or {}, s3_timeouts)
        else:
            self.fs, self._base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self.is_local = "file" in _protocols(self.fs)
        self.work_root = (
            Path(work_root)
            if work_root
            else workdir.default_work_root(self._base if self.is_local else None)
        )

    def private_dir(self) -> contextlib.AbstractContextManager[Path]:
        """A scratch folder of this run's own (0700) under the work root, removed afterwards."""
        return workdir.private_run_dir(self.work_root)

    def path(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def url(self, rel: str) -> str:
        """The address DuckDB and GX read ``rel`` at (with the scheme; the fs registered for S3)."""
        return f"{self.root}/{rel}"

    def _entries(self, rel_dir: str) -> list[dict]:
        # Listings are cached by fsspec (s3fs especially); the lake changes under us, so re-read.
        self.fs.invalidate_cache()
        try:
            return self.fs.ls(self.path(rel_dir), detail=True)
        except FileNotFoundError:
            return []

    def list_files(self, rel_dir: str) -> list[FileInfo]:
        """Files directly under ``rel_dir`` (sorted); an absent folder is simply empty."""
        prefix = self._base + "/"
        files = [
            FileInfo(
                e["name"][len(prefix) :] if e["name"].startswith(prefix) else e["name"],
                int(e.get("size") or 0),
            )
            for e in self._entries(rel_dir)
            if e.get("type") == "file"
        ]
        return sorted(files, key=lambda f: f.path)

    def parquet_files(self, rel_dir: str) -> list[FileInfo]:
        """The Parquet files of one partition folder (sorted by name); none if it is absent."""
        return [
            f
            for f in self.list_files(rel_dir)
            if f.path.endswith(".parquet") and not f.path.rsplit("/", 1)[-1].startswith(".")
        ]

    def parquet_urls(self, rel_dir: str) -> list[str]:
        """``parquet_files`` as the addresses DuckDB reads (pass the list to ``read_parquet``)."""
        return [self.url(f.path) for f in self.parquet_files(rel_dir)]

    def read_partition(self, rel_dir: str) -> pa.Table:
        """Every file of a partition folder as one table (a small table: ledger, a rollup)."""
        files = self.parquet_files(rel_dir)
        if not files:
            raise FileNotFoundError(f"no Parquet files in {self.url(rel_dir)}")
        return pa.concat_tables(
            [pq.read_table(self.path(f.path), filesystem=self.fs) for f in files]
        )

    def glob_urls(self, rel_pattern: str) -> list[str]:
        """The files matching a glob relative to the root, as addresses DuckDB reads, sorted; one
        listing of the lake rather than a check per partition. Dot-named (staging) files are
        left out."""
        self.fs.invalidate_cache()
        prefix = self._base + "/"
        return sorted(
            self.url(path.removeprefix(prefix))
            for path in self.fs.glob(self.path(rel_pattern))
            if not path.rsplit("/", 1)[-1].startswith(".")
        )

    def partition_rows(self, rel_dir: str) -> int:
        """Rows in a partition folder, from the files' footers (0 if it has none)."""
        return sum(
            pq.ParquetFile(self.path(f.path), filesystem=self.fs).metadata.num_rows
            for f in self.parquet_files(rel_dir)
        )

    def list_dirs(self, rel_dir: str) -> list[str]:
        """Names of the folders directly under ``rel_dir`` (sorted)."""
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1]
            for e in self._entries(rel_dir)
            if e.get("type") == "directory"
        )

    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(self.path(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[bytes]:
        return self.fs.open(self.path(rel), mode)

    def file_in(self, folder: str, rel: str) -> str:
        """``rel`` checked to name a file directly in ``folder`` (both relative to the root),
        returned normalised; anything else raises ``OutsideFolderError`` before a byte is read.
        Refused: an absolute path or URL, any ``..``, a file of a subfolder, and on a local
        disk a symbolic link (even one pointing inside: deleting it would leave its target)
        or a folder that resolves elsewhere. S3 has no links; the rest holds there too."""
        where = f"{folder}/"
        parts = rel.split("/")
        if not rel.strip() or "\0" in rel:
            reason = "is empty" if not rel.strip() else "holds a NUL byte"
        elif rel.startswith(("/", "~")) or "://" in rel:
            reason = "is an absolute path"
        elif ".." in parts:
            reason = "climbs out with '..'"
        else:
            name = "/".join(p for p in parts if p not in ("", "."))
            if "/" not in name or name.rsplit("/", 1)[0] != folder:
                reason = f"is not directly in {where}"
            elif self.is_local and os.path.islink(self.path(name)):
                reason = "is a symbolic link"
            elif self.is_local and os.path.dirname(os.path.realpath(self.path(name))) != (
                os.path.join(os.path.realpath(self._base), folder)
            ):
                reason = f"resolves outside {where}"
            else:
                return name
        raise OutsideFolderError(
            f"{rel!r} {reason}: name a file directly in {where} of the lake (e.g. "
            f"{where}request.json); nothing was read or deleted"
        )

    @contextlib.contextmanager
    def staged_file(self, rel: str) -> Iterator[str]:
        """Yield a local path to write ``rel`` to; publish it atomically if the block succeeds."""
        name = rel.rsplit("/", 1)[-1]
        token = uuid.uuid4().hex[:12]
        if self.is_local:
            final = self.path(rel)
            folder = os.path.dirname(final)
            os.makedirs(folder, exist_ok=True)
            staging = os.path.join(folder, f".{name}.{token}.tmp")
            try:
                yield staging
                fsync_file(staging)
                _remove_stale_staging(folder, name, keep=staging)
                os.replace(staging, final)
                fsync_dir(folder)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(staging)
        else:
            with self.private_dir() as scratch:
                staging = os.path.join(scratch, name)
                yield staging
                self.fs.put_file(staging, self.path(rel))

    @contextlib.contextmanager
    def staged_dir(
        self, rel_dir: str, *, if_unchanged: list[FileInfo] | None = None
    ) -> Iterator[str]:
        """Yield an empty local folder; if the block succeeds, its files become the complete
        contents of ``rel_dir`` at once (see the module docstring). With ``if_unchanged`` (a
        listing taken earlier) the publish is refused with ``ConcurrentChangeError`` if the folder
        changed meanwhile, so a rewrite of old data cannot undo a newer write."""
        if self.is_local:
            with self._staged_local_dir(rel_dir, if_unchanged) as staging:
                yield staging
        else:
            with self.private_dir() as scratch:
                yield str(scratch)
                self._check_unchanged(rel_dir, if_unchanged)
                self._publish_s3_dir(str(scratch), rel_dir)

    @contextlib.contextmanager
    def _staged_local_dir(self, rel_dir: str, if_unchanged: list[FileInfo] | None) -> Iterator[str]:
        final = self.path(rel_dir)
        area = self.path(STAGING_DIR)
        os.makedirs(area, exist_ok=True)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        label = urllib.parse.quote(rel_dir, safe="")
        staging = os.path.join(area, f"{label}.{uuid.uuid4().hex[:12]}")
        os.mkdir(staging)
        try:
            yield staging
            for name in os.listdir(staging):
                fsync_file(os.path.join(staging, name))
            fsync_dir(staging)
            _remove_stale_staging_dirs(area, label, keep=staging)
            self._check_unchanged(rel_dir, if_unchanged)
            _swap_in(staging, final)
            fsync_dir(os.path.dirname(final))
        finally:
            # After a swap this holds the previous contents; after a failure, the unpublished ones.
            shutil.rmtree(staging, ignore_errors=True)

    def _check_unchanged(self, rel_dir: str, expected: list[FileInfo] | None) -> None:
        if expected is not None and self.parquet_files(rel_dir) != expected:
            raise ConcurrentChangeError(
                f"{self.url(rel_dir)} changed while it was being rewritten (another run wrote it): "
                "nothing was published; run again"
            )

    def _publish_s3_dir(self, local_dir: str, rel_dir: str) -> None:
        new = sorted(os.listdir(local_dir))
        for name in new:
            self.fs.put_file(os.path.join(local_dir, name), self.path(f"{rel_dir}/{name}"))
        stale = [f.path for f in self.list_files(rel_dir) if f.path.rsplit("/", 1)[-1] not in new]
        if stale:
            self.fs.rm([self.path(p) for p in stale])

    def publish_dir(self, local_dir: str, rel: str) -> None:
        """Replace the folder ``rel`` with a copy of ``local_dir`` (a report: the latest run wins).
        Locally the new tree is complete before it is renamed in; readers may briefly find no
        folder between the two renames, never a half-written one."""
        if self.is_local:
            final = self.path(rel)
            parent, name = os.path.split(final)
            os.makedirs(parent, exist_ok=True)
            token = uuid.uuid4().hex[:12]
            staging = os.path.join(parent, f".{name}.{token}.tmp")
            retired = os.path.join(parent, f".{name}.{token}.old")
            shutil.copytree(local_dir, staging)
            try:
                # Two publishers may race; the last one's tree wins, neither fails.
                for _ in range(10):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(final, retired)
                    try:
                        os.replace(staging, final)
                        break
                    except OSError:  # another publisher renamed its tree in between
                        shutil.rmtree(retired, ignore_errors=True)
                else:
                    raise OSError(f"could not publish {final}: other writers kept replacing it")
            finally:
                shutil.rmtree(retired, ignore_errors=True)
                shutil.rmtree(staging, ignore_errors=True)
        else:
            target = self.path(rel)
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)
            self.fs.put(local_dir.rstrip("/") + "/", target, recursive=True)


def write_parquet(
    lake: Lake,
    rel: str,
    reader: pa.RecordBatchReader,
    transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
) -> tuple[int, int]:
    """Stream batches into one zstd Parquet file, published atomically as the only file of its
    partition folder (any other part file there, e.g. from a compaction, goes); returns
    (rows, bytes)."""
    rows = 0
    folder, name = rel.rsplit("/", 1)
    with lake.staged_dir(folder) as staging:
        local = os.path.join(staging, name)
        with pq.ParquetWriter(local, reader.schema, compression="zstd") as writer:
            for batch in reader:
                if transform is not None:
                    batch = transform(batch)
                writer.write_batch(batch)
                rows += batch.num_rows
        size = os.path.getsize(local)
    return rows, size


def sha256_hex(handle: IO[bytes]) -> str:
    """The SHA-256 of a stream (a local or lake file), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def write_table(lake: Lake, rel: str, table: pa.Table) -> tuple[int, int]:
    """``write_parquet`` for a table already in memory (a small result: rates, rollups)."""
    return write_parquet(
        lake, rel, pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    )


STAGING_DIR = ".staging"  # under the lake root: same filesystem, outside every partition glob

# renameat2(2): AT_FDCWD makes both paths relative to the working directory, like rename(2).
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


class OutsideFolderError(ValueError):
    """A path that must name a file in one folder of the lake leads elsewhere (``file_in``)."""


class ConcurrentChangeError(RuntimeError):
    """A partition folder changed between the listing a rewrite started from and its publish."""


def _renameat2(source: str, target: str, flags: int) -> bool:
    """renameat2 with ``flags``; False where the system or filesystem lacks it, raises on a real
    failure (e.g. EEXIST for RENAME_NOREPLACE)."""
    function = getattr(_LIBC, "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), target)


def _swap_in(staging: str, final: str) -> None:
    """Make ``staging`` the folder at ``final``; the previous contents (if any) end up at
    ``staging``, for the caller to remove."""
    try:
        if _renameat2(staging, final, _RENAME_NOREPLACE):  # the folder's first version
            return
    except FileExistsError:
        if _renameat2(staging, final, _RENAME_EXCHANGE):
            return
    _swap_with_two_renames(staging, final)


def exchange_folders(staged: str, final: str) -> None:
    """Make the folder ``staged`` the one at ``final`` at once (``_swap_in``); the previous
    contents, if any, end up at ``staged``. For a publisher that keeps its own staging
    (``lib/lake/publish.py``)."""
    _swap_in(staged, final)


def _swap_with_two_renames(staging: str, final: str) -> None:
    retired = f"{staging}.old"
    with contextlib.suppress(FileNotFoundError):
        os.rename(final, retired)
    os.rename(staging, final)
    # The caller removes ``staging``: put the previous contents there, as the exchange does.
    with contextlib.suppress(FileNotFoundError):
        os.rename(retired, staging)


def _remove_stale_staging_dirs(area: str, label: str, keep: str) -> None:
    """Staging folders of the same target left by a crashed earlier run are garbage."""
    for entry in os.listdir(area):
        path = os.path.join(area, entry)
        if entry.startswith(f"{label}.") and path != keep:
            shutil.rmtree(path, ignore_errors=True)


def _s3_filesystem(
    root: str, options: dict[str, Any], timeouts: S3Timeouts | None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The bounded S3 filesystem for ``root`` and the root's path on it. ``timeouts`` fill in
    whatever ``options["config_kwargs"]`` leaves unset."""
    from pipelines.lib.lake.s3 import BoundedS3FileSystem  # s3fs: imported only for an S3 lake

    config = {**(timeouts or S3Timeouts()).config_kwargs(), **options.get("config_kwargs", {})}
    fs = BoundedS3FileSystem(**{**options, "config_kwargs": config})
    return fs, fs._strip_protocol(root)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def fsync_file(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_stale_staging(folder: str, name: str, keep: str) -> None:
    """Staging files left by a crashed earlier run of this same partition are garbage (with the
    WAL DuckDB leaves beside a database it was writing)."""
    prefix = f".{name}."
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if entry.startswith(prefix) and entry.endswith((".tmp", ".tmp.wal")) and path != keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
