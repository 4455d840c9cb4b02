"""Partition leases: one writer per partition of a stage, across command lines, processes and
hosts, kept in the lake itself (no Dagster here).

Dagster's run queue keeps two runs of one partition apart (dagster.yaml's ``dagster/partition``
limit), but only the runs that go through the queue: two ``dagster asset materialize`` command
lines, or a run beside a backfill of another instance, meet no queue. The lease is the guard the
writers themselves take:

* ``{lake root}/_leases/<stage>/<partition>.json`` names its holder (host, pid, Dagster run id)
  and holds a random token, when it was acquired and last renewed, and when it expires.
* Taking it is an atomic create: locally a hard link of a complete file (``link(2)`` fails when
  the name exists, so nobody reads a half-written lease), on S3 a conditional PutObject
  (``If-None-Match: *``).
* The holder renews it every quarter of its time to live from a heartbeat thread: locally by
  replacing the file after checking it still holds its own token, on S3 by a PUT conditional on
  the ETag it last wrote (``If-Match``). It releases it when the block ends, by an exception too
  (a delete checked the same way).
* A lease past its expiry was left by a holder that died or stopped renewing: the next writer
  takes it over atomically, locally by renaming the expired file aside (one renamer wins) and
  checking it is the file it read, on S3 by a PUT conditional on the expired lease's ETag.
* A writer that finds a live lease waits up to ``wait_s``, polling; then it refuses with
  ``LeaseHeldError``, naming the holder and when its lease expires.
* A holder that finds its lease gone or someone else's (it failed to renew in time and was taken
  over) raises ``LeaseLostError`` when its block ends: its writes may have overlapped another's.
* Before a commit point (a publish's journal), the holder calls ``verify()``: a renewal done there
  and then, conditional on the version it last wrote, that raises ``LeaseLostError`` if the lease
  is no longer its own. A holder that stalled past its expiry (a paused VM, SIGSTOP) may resume
  before its heartbeat notices: only this check keeps it from committing over the new holder.
  ``held(lake, group, partition)`` finds the lease this process holds, for code below the one
  that took it.

Expiry is compared across hosts in wall-clock time: keep clocks within a small fraction of the
time to live (NTP does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pipelines.lib.lake.storage import Lake, fsync_dir

LEASES_DIR = "_leases"
DEFAULT_TTL_S = 120.0
DEFAULT_WAIT_S = 300.0
MIN_TTL_S = 10.0
POLL_S = 2.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")


class LeaseHeldError(RuntimeError):
    """Another writer holds the partition's lease and did not release it within the wait."""


class LeaseLostError(RuntimeError):
    """The lease was taken over (or removed) while its holder still ran."""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    run_id: str | None = None

    @classmethod
    def current(cls, run_id: str | None = None) -> Owner:
        return cls(socket.gethostname(), os.getpid(), run_id)

    def describe(self) -> str:
        who = f"run {self.run_id}" if self.run_id else "a process"
        return f"{who} (pid {self.pid} on host {self.host})"


@dataclass(frozen=True)
class LeaseRecord:
    """One lease file's contents."""

    name: str  # <group>/<partition>
    owner: Owner
    token: str
    acquired_at: float  # epoch seconds
    renewed_at: float
    expires_at: float

    def to_bytes(self) -> bytes:
        return (
            json.dumps(
                {
                    "lease": self.name,
                    "owner": {
                        "host": self.owner.host,
                        "pid": self.owner.pid,
                        "run_id": self.owner.run_id,
                    },
                    "token": self.token,
                    "acquired_at": _iso(self.acquired_at),
                    "renewed_at": _iso(self.renewed_at),
                    "expires_at": _iso(self.expires_at),
                },
                indent=2,
            ).encode()
            + b"\n"
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        """The record, or None for contents that are not a lease (treated as expired)."""
        try:
            doc = json.loads(data)
            owner = doc["owner"]
            return cls(
                str(doc["lease"]),
                Owner(str(owner["host"]), int(owner["pid"]), owner.get("run_id")),
                str(doc["token"]),
                _epoch(doc["acquired_at"]),
                _epoch(doc["renewed_at"]),
                _epoch(doc["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return (
            f"{self.owner.describe()}, acquired at {_iso(self.acquired_at)}, its lease expires "
            f"at {_iso(self.expires_at)} unless renewed"
        )


def lease_path(group: str, partition: str) -> str:
    """``_leases/<group>/<partition>.json``, relative to the lake root; ``group`` may have
    several levels (``rollups/traffic_daily``)."""
    for part in (*group.split("/"), partition):
        if not _NAME.fullmatch(part):
            raise ValueError(
                f"{group}/{partition!r} cannot name a lease: letters, digits, . _ = - only"
            )
    return f"{LEASES_DIR}/{group}/{partition}.json"


class Lease:
    """The lease on one partition of one stage, as a context manager::

        with Lease(lake, "ingest", "2025-06-02", Owner.current(run_id)):
            ...  # write the partition

    Entering takes the lease (waiting up to ``wait_s`` for a live holder, taking over an expired
    lease) and starts the heartbeat; leaving stops it and releases the lease, also when the block
    raised. ``check()`` raises ``LeaseLostError`` as soon as a renewal found the lease lost.
    """

    def __init__(
        self,
        lake: Lake,
        group: str,
        partition: str,
        owner: Owner,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        wait_s: float = DEFAULT_WAIT_S,
        poll_s: float = POLL_S,
        log: Callable[[str], Any] | None = None,
    ):
        if ttl_s <= 0 or wait_s < 0 or poll_s <= 0:
            raise ValueError("ttl_s and poll_s must be positive, wait_s not negative")
        self.name = f"{group}/{partition}"
        self.url = lake.url(lease_path(group, partition))
        self._store = _store_for(lake, lease_path(group, partition))
        self.owner = owner
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._log = log or (lambda message: None)
        self._record: LeaseRecord | None = None
        self._version: str | None = None
        self._lost: str | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def record(self) -> LeaseRecord | None:
        """What the lease file holds now, as far as its holder knows (None when not held)."""
        return self._record

    def acquire(self) -> LeaseRecord:
        deadline = time.monotonic() + self.wait_s
        announced: str | None = None
        while True:
            now = time.time()
            mine = LeaseRecord(
                self.name, self.owner, secrets.token_hex(16), now, now, now + self.ttl_s
            )
            version = self._store.create(mine.to_bytes())
            if version is not None:
                return self._hold(mine, version)
            found = self._store.read()
            if found is None:  # released between the create and the read: try again
                continue
            data, found_version = found
            holder = LeaseRecord.from_bytes(data)
            if holder is None or holder.expires_at <= time.time():
                version = self._store.swap(mine.to_bytes(), found_version)
                if version is not None:
                    self._log(
                        f"Lease {self.name}: took over "
                        + (
                            f"the expired lease of {holder.describe()}"
                            if holder
                            else f"an unreadable lease file {self.url}"
                        )
                    )
                    return self._hold(mine, version)
                continue  # someone else changed it first: look again
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseHeldError(self._refusal(holder))
            if announced != holder.token:
                announced = holder.token
                self._log(
                    f"Lease {self.name} is held by {holder.describe()}: waiting up to "
                    f"{remaining:.0f} s more (TELEMETRY_LEASE_WAIT_S)"
                )
            time.sleep(min(self.poll_s, remaining, max(holder.expires_at - time.time(), 0) + 0.05))

    def _refusal(self, holder: LeaseRecord) -> str:
        return (
            f"partition {self.name} is being written by {holder.describe()}; waited "
            f"{self.wait_s:g} s (TELEMETRY_LEASE_WAIT_S) for it: run again once that run has "
            f"ended, or after the expiry if it died ({self.url})"
        )

    def _hold(self, record: LeaseRecord, version: str) -> LeaseRecord:
        self._record, self._version, self._lost = record, version, None
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lease-{self.name}", daemon=True
        )
        self._heartbeat.start()
        with _HELD_GUARD:
            _HELD[self.url] = self
        return record

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Push the expiry one time-to-live ahead; False once the lease is lost. A renewal that
        fails for another reason (the store did not answer) is retried at the next beat."""
        with self._guard:
            if self._lost or self._record is None or self._version is None:
                return False
            now = time.time()
            record = replace(self._record, renewed_at=now, expires_at=now + self.ttl_s)
            try:
                version = self._store.rewrite(record.to_bytes(), self._version)
            except Exception as exc:  # the next beat tries again; only a takeover loses it
                self._log(f"Lease {self.name}: renewal failed, retrying: {exc}")
                return True
            if version is None:
                self._lost = (
                    f"the lease on partition {self.name} was taken over or removed while "
                    f"{self.owner.describe()} still held it ({self.url}): another writer may "
                    "have written the partition at the same time; run it again"
                )
                return False
            self._record, self._version = record, version
            return True

    def check(self) -> None:
        """Raise ``LeaseLostError`` if a renewal found the lease lost."""
        if self._lost:
            raise LeaseLostError(self._lost)

    def verify(self) -> None:
        """Make sure the lease is still this holder's, now: renew it at once (a write conditional
        on the version this holder last wrote, so a takeover meanwhile makes it fail) and raise
        ``LeaseLostError`` if it is lost or not held. Call it right before a commit point. A store
        that does not answer raises its own error: the lease cannot be confirmed either."""
        with self._guard:
            if self._lost:
                raise LeaseLostError(self._lost)
            if self._record is None or self._version is None:
                raise LeaseLostError(
                    f"the lease on partition {self.name} is not held by {self.owner.describe()} "
                    f"({self.url})"
                )
            now = time.time()
            record = replace(self._record, renewed_at=now, expires_at=now + self.ttl_s)
            version = self._store.rewrite(record.to_bytes(), self._version)
            if version is None:
                self._lost = (
                    f"the lease on partition {self.name} was taken over or removed while "
                    f"{self.owner.describe()} still held it ({self.url}): another writer may "
                    "be writing the partition; this one stops before committing; run it again"
                )
                raise LeaseLostError(self._lost)
            self._record, self._version = record, version

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still this holder's; raises
        ``LeaseLostError`` if it was not."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        with _HELD_GUARD:
            if _HELD.get(self.url) is self:
                del _HELD[self.url]
        with self._guard:
            version, self._version, self._record = self._version, None, None
            if version is not None and not self._lost and not self._store.delete(version):
                self._lost = (
                    f"the lease on partition {self.name} was no longer "
                    f"{self.owner.describe()}'s when it ended ({self.url}): another writer may "
                    "have written the partition at the same time; run it again"
                )
        self.check()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.release()
        else:  # the block's own exception says more than a lost lease would
            with contextlib.suppress(Exception):
                self.release()


# The leases this process holds, by address: ``held`` finds them.
_HELD: dict[str, Lease] = {}
_HELD_GUARD = threading.Lock()


def held(lake: Lake, group: str, partition: str) -> Lease | None:
    """The lease on ``partition`` of ``group`` this process holds now (None: it holds none)."""
    with _HELD_GUARD:
        return _HELD.get(lake.url(lease_path(group, partition)))


class _Store(Protocol):
    """One lease file with compare-and-swap operations; a version identifies its contents."""

    def create(self, data: bytes) -> str | None: ...  # None: the file exists

    def read(self) -> tuple[bytes, str] | None: ...  # None: no file

    def swap(self, data: bytes, expected: str) -> str | None: ...  # take over an expired lease

    def rewrite(self, data: bytes, expected: str) -> str | None: ...  # renew

    def delete(self, expected: str) -> bool: ...


def _store_for(lake: Lake, rel: str) -> _Store:
    if lake.is_local:
        return _LocalStore(lake.path(rel))
    if lake.root.startswith("s3://"):
        return _S3Store(lake, lake.path(rel))
    raise ValueError(f"partition leases need a local folder or an s3:// lake, not {lake.root}")


class _LocalStore:
    """A file on a local disk; its version is the SHA-256 of its contents."""

    def __init__(self, path: str):
        self.path = path
        self.folder, self.file = os.path.split(path)

    def _scratch(self, suffix: str) -> str:
        return os.path.join(self.folder, f".{self.file}.{secrets.token_hex(6)}.{suffix}")

    def create(self, data: bytes) -> str | None:
        os.makedirs(self.folder, exist_ok=True)
        staged = self._scratch("tmp")
        _write_synced(staged, data)
        try:
            os.link(staged, self.path)  # atomic, and the name appears with its whole contents
        except FileExistsError:
            return None
        finally:
            os.remove(staged)
        fsync_dir(self.folder)
        return _digest(data)

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def swap(self, data: bytes, expected: str) -> str | None:
        aside = self._scratch("old")
        try:
            os.rename(self.path, aside)  # of two takers, one renames the file; the other finds none
        except FileNotFoundError:
            return None
        try:
            with open(aside, "rb") as handle:
                if _digest(handle.read()) != expected:
                    # Not the expired lease we read: a fresher one (taken over meanwhile). Put it
                    # back unless yet another writer created one in the gap.
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, self.path)
                    return None
            return self.create(data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(aside)

    def rewrite(self, data: bytes, expected: str) -> str | None:
        current = self.read()
        if current is None or current[1] != expected:
            return None
        staged = self._scratch("tmp")
        _write_synced(staged, data)
        os.replace(staged, self.path)  # never absent: a waiter cannot slip in between
        fsync_dir(self.folder)
        return _digest(data)

    def delete(self, expected: str) -> bool:
        current = self.read()
        if current is None or current[1] != expected:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        return True


class _S3Store:
    """An S3 object written with conditional requests; its version is its ETag."""

    def __init__(self, lake: Lake, path: str):
        self.fs = lake.fs
        self.bucket, self.key, _ = self.fs.split_path(path)

    def _put(self, data: bytes, **condition: str) -> str | None:
        try:
            response = self.fs.call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self.key,
                Body=data,
                ContentType="application/json",
                **condition,
            )
        except Exception as exc:
            if _lost_race(exc):
                return None
            raise
        return response["ETag"]

    def create(self, data: bytes) -> str | None:
        return self._put(data, IfNoneMatch="*")

    def read(self) -> tuple[bytes, str] | None:
        from fsspec.asyn import sync

        async def get() -> tuple[bytes, str]:
            response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
            try:
                return await response["Body"].read(), response["ETag"]
            finally:
                response["Body"].close()

        try:
            return sync(self.fs.loop, get)
        except FileNotFoundError:
            return None

    def swap(self, data: bytes, expected: str) -> str | None:
        return self._put(data, IfMatch=expected)

    def rewrite(self, data: bytes, expected: str) -> str | None:
        return self._put(data, IfMatch=expected)

    def delete(self, expected: str) -> bool:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=expected)
        except Exception as exc:
            if _lost_race(exc):
                return False
            raise
        return True


# 412 (the condition failed), 409 (a concurrent conditional write won), 404 (deleted meanwhile).
_RACE_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"}


def _lost_race(exc: BaseException) -> bool:
    """Whether an S3 error means the condition did not hold (s3fs translates botocore's
    ClientError into OSErrors and keeps the original as the cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return error.get("Code") in _RACE_CODES or status in _RACE_CODES
        seen = seen.__cause__ or seen.__context__
    return isinstance(exc, FileExistsError | FileNotFoundError)


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
