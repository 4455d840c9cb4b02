"""One filesystem API over a local folder and ``s3://``: list, read, and publish a file atomically.

Atomic publish is the rule every writer follows: a reader sees the previous version of a file or the
new one, never a half-written one, and a crash leaves the previous version in place.

* local: write ``.<name>.<token>.tmp`` beside the target, fsync, then ``os.replace`` (an atomic
  rename); the dot prefix and ``.tmp`` suffix keep it out of every ``*.parquet`` glob.
* S3: write a local temporary file, then one PUT of the final key. S3 makes a PUT visible whole
  or not at all, and a retry rewrites the same deterministic key, so it cannot leave duplicates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the lake root
    size_bytes: int


class Lake:
    """The lake root and the filesystem it lives on. Paths passed in are relative to the root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        if not root:
            raise ValueError("the lake root is empty: set TELEMETRY_LAKE_ROOT")
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self.is_local = "file" in _protocols(self.fs)

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
                _fsync(staging)
                _remove_stale_staging(folder, name, keep=staging)
                os.replace(staging, final)
                _fsync_dir(folder)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(staging)
        else:
            scratch = tempfile.mkdtemp(prefix="telemetry-lake-")
            staging = os.path.join(scratch, name)
            try:
                yield staging
                self.fs.put_file(staging, self.path(rel))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

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
    """Stream batches into one zstd Parquet file published atomically; returns (rows, bytes)."""
    rows = 0
    with lake.staged_file(rel) as local:
        with pq.ParquetWriter(local, reader.schema, compression="zstd") as writer:
            for batch in reader:
                if transform is not None:
                    batch = transform(batch)
                writer.write_batch(batch)
                rows += batch.num_rows
        size = os.path.getsize(local)
    return rows, size


def write_table(lake: Lake, rel: str, table: pa.Table) -> tuple[int, int]:
    """``write_parquet`` for a table already in memory (a small result: rates, rollups)."""
    return write_parquet(
        lake, rel, pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    )


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: str) -> None:
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
