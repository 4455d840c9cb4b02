"""The preflight: every setting a run reads, checked at once, one line per problem naming the
variable and the fix (no Dagster here).

``python -m pipelines.doctor`` prints these lines before anything is launched, and every run of
the code location checks the same first, before its first step (``pipelines/defs/executor.py``).
Without it a bad setting surfaced inside the step that first read it, as a long traceback, after
the run had started. The checks are the ones the resources apply when a step starts
(``lib/lake/settings.py``, ``lib/lake/lake_root.py``), plus what only the machine can tell: whether
the S3
endpoint answers a listing of the lake (bounded: one attempt, a few seconds) and whether the
DuckDB cap fits in the memory here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from pipelines.lib.ingest import keyring_config
from pipelines.lib.lake import lake_root, settings
from pipelines.lib.lake.errors import ConfigError, S3EndpointError
from pipelines.lib.lake.paths import default_lake_root
from pipelines.lib.lake.storage import S3Timeouts

ERROR = "error"
WARNING = "warning"
OK = "ok"
_T = TypeVar("_T")

# The endpoint probe waits at most this long (one attempt, no retry), whatever the run's own
# limits: a preflight that hung for the run's (retries + 1) x timeouts would be no preflight.
PROBE_CONNECT_S = 5.0
PROBE_READ_S = 10.0
# A run holds its DuckDB cap plus under 0.9 GB of its own (README, "Memory and speed").
PROCESS_OVERHEAD_BYTES = 1 << 30


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR, WARNING or OK
    message: str  # one line: the variable, what is wrong, what to set

    def line(self) -> str:
        return f"{self.level}: {self.message}"


def check(
    env: Mapping[str, str],
    today: date,
    *,
    probe_s3: bool = True,
    partitions: Sequence[str] = (),
) -> list[Finding]:
    """Every finding about the settings in ``env`` (the process environment): errors, warnings
    and what was found fine. ``partitions`` are daily partition keys about to be launched."""
    findings: list[Finding] = []
    first = _guard(findings, "the first date", lambda: _first_date(env, today, findings))
    _guard(findings, "the lake root", lambda: _lake(env, findings, probe_s3))
    _guard(findings, "the PII keys", lambda: _keys(env, first, findings))
    _guard(findings, "the DuckDB settings", lambda: _duckdb(env, findings))
    _guard(findings, "the executor", lambda: _executor(env, findings))
    for key in partitions:
        if first is None:
            break  # the first date's own error says it all
        try:
            day = settings.daily_partition(key, first, today)
            findings.append(Finding(OK, f"partition {day.isoformat()} exists"))
        except ConfigError as exc:
            findings.append(_error(exc))
    return findings


def problems(env: Mapping[str, str], today: date) -> list[str]:
    """The error lines alone: what makes a run fail before its first step."""
    return [f.message for f in check(env, today) if f.level == ERROR]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(exc: BaseException) -> Finding:
    return Finding(ERROR, _one_line(str(exc)))


def _guard(findings: list[Finding], what: str, run: Callable[[], _T]) -> _T | None:
    """Run one group of checks; a ConfigError is its finding, and anything unexpected still
    becomes one line rather than a traceback (the doctor must not crash on the setup it
    diagnoses)."""
    try:
        return run()
    except ConfigError as exc:
        findings.append(_error(exc))
    except Exception as exc:
        findings.append(
            Finding(ERROR, _one_line(f"could not check {what}: {type(exc).__name__}: {exc}"))
        )
    return None


def _first_date(env: Mapping[str, str], today: date, findings: list[Finding]) -> date:
    first = settings.first_partition_date(env.get("TELEMETRY_FIRST_DATE"))
    settings.first_date_not_in_future(first, today)
    findings.append(
        Finding(OK, f"first daily partition {first.isoformat()} (TELEMETRY_FIRST_DATE)")
    )
    return first


def _lake(env: Mapping[str, str], findings: list[Finding], probe_s3: bool) -> None:
    # Each setting on its own, so that one bad value does not hide the next.
    for run in (
        lambda: settings.lease_wait_s(env.get("TELEMETRY_LEASE_WAIT_S")),
        lambda: settings.lease_ttl_s(env.get("TELEMETRY_LEASE_TTL_S")),
        lambda: settings.work_root(env.get("TELEMETRY_WORK_ROOT")),
        lambda: settings.retired_temp_directory(env.get("TELEMETRY_DUCKDB_TEMP_DIRECTORY")),
    ):
        _guard(findings, "the lake settings", run)
    timeouts = _guard(
        findings,
        "the S3 timeouts",
        lambda: settings.s3_timeouts(
            env.get("TELEMETRY_S3_CONNECT_TIMEOUT_S"),
            env.get("TELEMETRY_S3_READ_TIMEOUT_S"),
            env.get("TELEMETRY_S3_RETRIES"),
        ),
    )
    configured = env.get("TELEMETRY_LAKE_ROOT")
    root = settings.lake_root(configured, default_lake_root())
    if root.startswith("s3://"):
        if not probe_s3:
            findings.append(Finding(OK, f"lake root {root} (S3, not probed)"))
            return
        endpoint = (env.get("TELEMETRY_S3_ENDPOINT_URL") or "").strip() or None
        findings.append(_probe_s3(root, endpoint, timeouts or S3Timeouts()))
    elif "://" in root and not root.startswith("file://"):
        findings.append(Finding(OK, f"lake root {root}"))
    else:
        lake_root.check_local_root(root, configured)
        findings.append(Finding(OK, f"lake root {root.removeprefix('file://')}"))


def _probe_s3(root: str, endpoint: str | None, timeouts: S3Timeouts) -> Finding:
    """One listing of the lake's prefix, as a run's first request makes it."""
    if endpoint and not endpoint.startswith(("http://", "https://")):
        return Finding(
            ERROR,
            f"TELEMETRY_S3_ENDPOINT_URL={endpoint!r} is not a URL: set it as "
            "http(s)://host:port, or unset it for AWS",
        )
    from fsspec.asyn import sync

    from pipelines.lib.lake.storage import Lake  # s3fs: only for an S3 lake

    probe = S3Timeouts(
        min(timeouts.connect_s, PROBE_CONNECT_S), min(timeouts.read_s, PROBE_READ_S), 0
    )
    options = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    lake = Lake(root, options, None, probe)
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    where = endpoint or "the AWS S3 endpoint"
    try:
        # The async method: s3fs's sync call_s3 is bound to the base class's and would bypass
        # lib/lake/s3.py, which names a missing bucket and an endpoint that does not answer.
        sync(
            lake.fs.loop,
            lake.fs._call_s3,
            "list_objects_v2",
            Bucket=bucket,
            Prefix=prefix.strip("/") + "/",
            MaxKeys=1,
        )
    except lake_root.LakeRootError as exc:
        return _error(exc)
    except S3EndpointError as exc:
        cause = type(exc.__cause__).__name__
        if cause == "ConnectTimeoutError":
            what = f"did not accept a connection within {probe.connect_s:g} s"
        elif cause == "ReadTimeoutError":
            what = f"did not answer within {probe.read_s:g} s"
        else:
            what = "could not be reached"
        return Finding(
            ERROR,
            f"the S3 endpoint {where} {what} (TELEMETRY_LAKE_ROOT={root}): check "
            "TELEMETRY_S3_ENDPOINT_URL and the network to it",
        )
    except Exception as exc:
        return Finding(ERROR, _one_line(_s3_refusal(exc, root, where)))
    return Finding(OK, f"lake root {root} (S3 at {where}: answered)")


def _s3_refusal(exc: Exception, root: str, where: str) -> str:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            f"no AWS credentials for TELEMETRY_LAKE_ROOT={root}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (any way botocore finds credentials)"
        )
    if isinstance(exc, PermissionError):
        return (
            f"the S3 endpoint {where} refused to list TELEMETRY_LAKE_ROOT={root} ({exc}): give "
            "the pipeline's credentials s3:ListBucket on the bucket, or fix "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        )
    return (
        f"listing TELEMETRY_LAKE_ROOT={root} at {where} failed ({name}: {exc}): check "
        "TELEMETRY_LAKE_ROOT, TELEMETRY_S3_ENDPOINT_URL and the AWS credentials"
    )


def _keys(env: Mapping[str, str], first: date | None, findings: list[Finding]) -> None:
    ring, warning = keyring_config.pii_keyring(
        env.get("TELEMETRY_PII_KEY"),
        env.get("TELEMETRY_ENV"),
        keys=env.get("TELEMETRY_PII_KEYS"),
        keys_file=env.get("TELEMETRY_PII_KEYS_FILE"),
        overlap=env.get("TELEMETRY_PII_OVERLAP_DAYS"),
        first_date=first,
    )
    if warning:
        findings.append(Finding(WARNING, _one_line(warning)))
    else:
        findings.append(Finding(OK, f"PII keys from {ring.source} ({len(ring.keys)} key(s))"))


def _duckdb(env: Mapping[str, str], findings: list[Finding]) -> None:
    value = env.get("TELEMETRY_DUCKDB_MEMORY_LIMIT") or "2GB"
    limit = _guard(findings, "the memory limit", lambda: settings.duckdb_memory_limit(value))
    threads = _guard(
        findings,
        "the threads",
        lambda: settings.duckdb_threads(env.get("TELEMETRY_DUCKDB_THREADS") or 2),
    )
    if limit is None or threads is None:
        return
    here = available_memory_bytes()
    if here is not None and limit >= here:
        findings.append(
            Finding(
                ERROR,
                f"TELEMETRY_DUCKDB_MEMORY_LIMIT={value} is not below the memory here "
                f"({_gib(here)}): DuckDB would be killed before it spills; set it to at most "
                f"{_gib(max(here - PROCESS_OVERHEAD_BYTES, here // 2))} (each run also needs "
                "about 1 GB of its own)",
            )
        )
        return
    if here is not None and limit + PROCESS_OVERHEAD_BYTES > here:
        findings.append(
            Finding(
                WARNING,
                f"TELEMETRY_DUCKDB_MEMORY_LIMIT={value} leaves less than 1 GB of the "
                f"{_gib(here)} here for the rest of the run: lower it if runs are killed",
            )
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and threads > cores:
        findings.append(
            Finding(
                WARNING,
                f"TELEMETRY_DUCKDB_THREADS={threads} is more than the {cores} cores here: "
                f"set it to {cores} or fewer",
            )
        )
    of_here = f" of {_gib(here)} here" if here else ""
    findings.append(Finding(OK, f"DuckDB: memory limit {value}{of_here}, {threads} threads"))


def _executor(env: Mapping[str, str], findings: list[Finding]) -> None:
    name = settings.executor(env.get("TELEMETRY_EXECUTOR"))
    findings.append(Finding(OK, f"executor {name} (TELEMETRY_EXECUTOR)"))


def available_memory_bytes() -> int | None:
    """The memory this process may use: the machine's, or its cgroup's limit (a pod's) when
    lower; None when neither can be read."""
    sizes = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    return min(sizes) if sizes else None


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f}GiB"
