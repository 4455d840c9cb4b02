"""Validate configuration values and say exactly what to set when one is wrong (no Dagster here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pipelines.lib.lake import lease, workdir
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import S3Timeouts

DEFAULT_FIRST_DATE = date(2025, 1, 1)


def first_partition_date(value: str | None) -> date:
    if not value:
        return DEFAULT_FIRST_DATE
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"TELEMETRY_FIRST_DATE={value!r} is not a date: set it as YYYY-MM-DD (e.g. 2025-01-01)"
        ) from exc


def lake_root(value: str | None, default: str) -> str:
    """TELEMETRY_LAKE_ROOT, checked. A relative path is a folder of the project (resolved against
    ``PROJECT_ROOT``), never of the working directory: the same setting must name the same lake
    from the daemon, a shell elsewhere, or a test (lib/lake/lake_root.py checks that it exists)."""
    root = (value or "").strip() or default
    if "://" in root and not root.startswith(("s3://", "file://", "memory://")):
        raise ConfigError(f"TELEMETRY_LAKE_ROOT={root!r}: use a local path or s3://bucket/prefix")
    if "://" not in root and not os.path.isabs(root):
        root = os.path.normpath(PROJECT_ROOT / root)
    return root


def accepted_missing_landing(values: list[str] | None) -> frozenset[date]:
    """The ``duckdb`` resource's ``accept_missing_landing``: landing dates (YYYY-MM-DD) whose
    files, listed by a day's ledger but gone, a re-ingest may publish without
    (lib/ingest/wipe_guard.py).
    Meant for one run, set in its launchpad config, never in the environment."""
    dates = set()
    for value in values or []:
        try:
            dates.add(date.fromisoformat(str(value).strip()))
        except ValueError as exc:
            raise ConfigError(
                f"resources.duckdb.config.accept_missing_landing: {value!r} is not a date: list "
                'the landing dates whose missing files to publish without, e.g. ["2025-06-01"]'
            ) from exc
    return frozenset(dates)


def work_root(value: str | None) -> str | None:
    """TELEMETRY_WORK_ROOT, checked; None leaves the lake's default (lib/lake/workdir.py)."""
    if value is None or not value.strip():
        return None
    try:
        return str(workdir.check_work_root(value))
    except workdir.WorkRootError as exc:
        raise ConfigError(str(exc)) from exc


def retired_temp_directory(value: str | None) -> None:
    """TELEMETRY_DUCKDB_TEMP_DIRECTORY spilled into one shared folder that a killed run never
    cleaned; set, it is refused rather than silently ignored."""
    if value:
        raise ConfigError(
            f"TELEMETRY_DUCKDB_TEMP_DIRECTORY={value!r} is no longer read: set "
            f"TELEMETRY_WORK_ROOT={value!r} instead (each run spills into a private folder under "
            "it, removed when the run ends) and unset TELEMETRY_DUCKDB_TEMP_DIRECTORY"
        )


def _positive_seconds(variable: str, value: str | float | None, default: float) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        seconds = float(value)
    except ValueError as exc:
        raise ConfigError(
            f"{variable}={value!r} is not a number of seconds: set it to a positive number "
            f"(default {default:g})"
        ) from exc
    if not 0 < seconds < float("inf"):
        raise ConfigError(
            f"{variable}={value!r} must be a positive number of seconds (default {default:g})"
        )
    return seconds


def _count(variable: str, value: str | int | None, default: int, most: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        count = int(value)
    except ValueError as exc:
        raise ConfigError(
            f"{variable}={value!r} is not a whole number: set it between 0 and {most} "
            f"(default {default})"
        ) from exc
    if not 0 <= count <= most:
        raise ConfigError(
            f"{variable}={count} is out of range: set it between 0 and {most} (default {default})"
        )
    return count


def s3_timeouts(
    connect: str | float | None, read: str | float | None, retries: str | int | None
) -> S3Timeouts:
    """TELEMETRY_S3_CONNECT_TIMEOUT_S, TELEMETRY_S3_READ_TIMEOUT_S and TELEMETRY_S3_RETRIES,
    checked; unset ones keep the defaults (10 s, 60 s, 3 retries)."""
    defaults = S3Timeouts()
    return S3Timeouts(
        _positive_seconds("TELEMETRY_S3_CONNECT_TIMEOUT_S", connect, defaults.connect_s),
        _positive_seconds("TELEMETRY_S3_READ_TIMEOUT_S", read, defaults.read_s),
        _count("TELEMETRY_S3_RETRIES", retries, defaults.retries, most=20),
    )


def lease_wait_s(value: str | float | None) -> float:
    """TELEMETRY_LEASE_WAIT_S: how long a run waits for another run's partition lease before it
    refuses (0: refuse at once)."""
    if value is not None and str(value).strip() in ("0", "0.0"):
        return 0.0
    return _positive_seconds("TELEMETRY_LEASE_WAIT_S", value, lease.DEFAULT_WAIT_S)


def lease_ttl_s(value: str | float | None) -> float:
    """TELEMETRY_LEASE_TTL_S: how long a lease outlives its holder's last renewal (the holder
    renews it every quarter of that); at least 10 s."""
    ttl = _positive_seconds("TELEMETRY_LEASE_TTL_S", value, lease.DEFAULT_TTL_S)
    if ttl < lease.MIN_TTL_S:
        raise ConfigError(
            f"TELEMETRY_LEASE_TTL_S={value!r} is below {lease.MIN_TTL_S:g} s: a lease must "
            f"outlive a slow renewal; set at least {lease.MIN_TTL_S:g} (default "
            f"{lease.DEFAULT_TTL_S:g})"
        )
    return ttl


# DuckDB's own units (1000- and 1024-based); a bare number is refused, as DuckDB refuses it.
_MEMORY_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
# Below this a unit slip is likelier than a plan ("2MB" for "2GB"): DuckDB cannot even stage a
# small day's lines in it (a 1M-line day needs about 200 MB, README "Memory and speed").
MIN_MEMORY_LIMIT_BYTES = 64 << 20


def duckdb_memory_limit(value: str | None) -> int:
    """TELEMETRY_DUCKDB_MEMORY_LIMIT (``DuckDBSettings.memory_limit``) in bytes, checked as
    DuckDB reads it (a number and a unit, e.g. 2GB, 512MB, 1.5GiB)."""
    text = (value or "").strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", text)
    unit = _MEMORY_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ConfigError(
            f"TELEMETRY_DUCKDB_MEMORY_LIMIT={value!r} is not a size: set a number and a unit "
            "(KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. 2GB (the default)"
        )
    size = int(float(match.group(1)) * unit)
    if size < MIN_MEMORY_LIMIT_BYTES:
        raise ConfigError(
            f"TELEMETRY_DUCKDB_MEMORY_LIMIT={value!r} is below 64MiB, too little for DuckDB to "
            "stage a day: set it to e.g. 2GB (the default); a 1M-line day needs about 200MB"
        )
    return size


def duckdb_threads(value: str | int | None) -> int:
    """TELEMETRY_DUCKDB_THREADS (``DuckDBSettings.threads``): a whole number, at least 1."""
    try:
        threads = int(str(value).strip())
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(
            f"TELEMETRY_DUCKDB_THREADS={value!r} is not a whole number of at least 1: set it to "
            "the cores a run may use, e.g. 2 (the default)"
        )
    return threads


def first_date_not_in_future(first: date, today: date) -> date:
    """The first daily partition must have begun (UTC): a later one leaves Dagster no partition
    to run, and every launch fails with its bare "Could not find a partition"."""
    if first > today:
        raise ConfigError(
            f"TELEMETRY_FIRST_DATE={first.isoformat()} is in the future (today is "
            f"{today.isoformat()} UTC), so there is no daily partition yet: set it to the first "
            "day of your data, e.g. 2025-01-01 (the default)"
        )
    return first


def daily_partition(value: str, first: date, today: date) -> date:
    """A daily partition key, checked against the partitions Dagster defines: from
    TELEMETRY_FIRST_DATE to yesterday (UTC). Said before Dagster's bare "Could not find a
    partition with key" (or "All selected assets must have a PartitionsDefinition containing the
    passed partition key") is."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ConfigError(f"partition {value!r} is not a date: give it as YYYY-MM-DD") from exc
    if day < first:
        raise ConfigError(
            f"partition {day.isoformat()} is before the first daily partition, "
            f"TELEMETRY_FIRST_DATE={first.isoformat()}: set TELEMETRY_FIRST_DATE to "
            f"{day.isoformat()} or earlier to build it (it is read when the definitions load: "
            "reload the code location after changing it)"
        )
    if day >= today:
        raise ConfigError(
            f"partition {day.isoformat()} has not ended yet (today is {today.isoformat()} UTC): "
            "the latest daily partition is yesterday's"
        )
    return day


EXECUTORS = ("multiprocess", "in_process", "k8s")


def executor(value: str | None) -> str:
    """TELEMETRY_EXECUTOR: where a run's steps execute (pipelines/defs/executor.py)."""
    name = (value or "").strip() or "multiprocess"
    if name not in EXECUTORS:
        raise ConfigError(f"TELEMETRY_EXECUTOR={value!r}: set one of {', '.join(EXECUTORS)}")
    return name


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """A ConfigError raised inside, however deep Dagster's loader wrapped it, ends the process with
    its one line (``telemetry-lake: ...``, exit 1) instead of a 200-line traceback: bad
    configuration found while definitions load (TELEMETRY_FIRST_DATE, read for the partitions)."""
    try:
        yield
    except Exception as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise SystemExit(f"telemetry-lake: {cause}") from None
