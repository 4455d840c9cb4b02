"""Benchmark inputs, cached under the work dir: one generated event day by (lines, seed), and for
``--steady`` a lake of full landing days by (days, lines, seed)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from tqdm import tqdm

from bench.log import log
from pipelines.lib.ingest.landing import (
    READS_DAYS_AFTER,
    READS_DAYS_BEFORE,
    landing_dates,
    list_landing_files,
)
from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.lake.storage import Lake
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate, load_manifest, manifest_path, progress_bar

DAY = date(2025, 6, 2)


@dataclass(frozen=True)
class Inputs:
    """A lake root holding the generated landing zone, and what partition ``DAY`` reads of it."""

    lake: str
    files: tuple[str, ...]  # relative to ``lake``, in (dt, name) order
    lines: int  # landing lines in those files
    # --steady only: the lines of landing date DAY alone (what the plain copy reads), and the
    # first and last full landing dates of the lake.
    day_lines: int | None = None
    full_days: tuple[date, date] | None = None


def sample_config(lines: int, seed: int) -> SampleConfig:
    """One event day of about ``lines`` landing lines, with the generator's usual shares."""
    return SampleConfig(start=DAY, days=1, seed=seed).for_lines_per_day(lines)


def steady_config(lines: int, seed: int, days: int) -> SampleConfig:
    """Event days around ``DAY`` such that ``days`` landing dates in a row are full, ``DAY``'s
    window among them (centred) and the partitions next to it too when ``days`` >= 6.

    Landing date L holds lines of event dates L-2..L+1 (late by up to two days, early by one), so
    L is full when those four were generated: ``days`` full landing dates need ``days`` + 3 event
    dates. Every landing date then holds about ``lines`` lines."""
    if days < len(landing_dates(DAY)):
        raise ValueError(f"--steady-days must be >= {len(landing_dates(DAY))}, got {days}")
    first_full = DAY - timedelta(days=READS_DAYS_BEFORE + (days - len(landing_dates(DAY))) // 2)
    start = first_full - timedelta(days=READS_DAYS_AFTER)
    return SampleConfig(start=start, days=days + 3, seed=seed).for_lines_per_day(lines)


def full_landing_days(config: SampleConfig) -> tuple[date, date]:
    """The first and last landing dates every one of whose event dates was generated."""
    return (
        config.start + timedelta(days=READS_DAYS_AFTER),
        config.end - timedelta(days=READS_DAYS_BEFORE),
    )


def steady_partitions(config: SampleConfig) -> list[date]:
    """The partitions whose whole window (``landing_dates``) is full landing dates."""
    first, last = full_landing_days(config)
    count = (last - first).days + 1 - READS_DAYS_BEFORE - READS_DAYS_AFTER
    return [first + timedelta(days=READS_DAYS_BEFORE + n) for n in range(count)]


def _is_current(lake: str, config: SampleConfig) -> bool:
    """A finished earlier generation of this very config (a changed generator default is not)."""
    if not os.path.exists(manifest_path(lake)):
        return False
    return load_manifest(lake)["config"] == config.to_dict()


def _generate(lake: str, config: SampleConfig) -> None:
    """Generate into a temporary sibling folder and rename it, so a crash leaves no half cache."""
    partial = f"{lake}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    expected = round(config.valid_events_per_request() * config.requests_per_day * config.days)
    with progress_bar(expected, "[bench] generate") as progress:
        generate(config, partial, on_progress=progress.update)
    os.rename(partial, lake)


def _read_files(lake: str, manifest: dict[str, Any]) -> Inputs:
    files = tuple(f.path for f in list_landing_files(Lake(lake), landing_dates(DAY)))
    lines = sum(manifest["files"][f]["lines"] for f in files)
    return Inputs(lake, files, lines)


def _cached(lake: str, config: SampleConfig) -> dict[str, Any]:
    """The manifest of ``lake``, generated first from ``config`` when missing or stale."""
    if _is_current(lake, config):
        log(f"inputs: reusing {lake}")
    else:
        lines = config.requests_per_day * config.days * config.lines_per_request()
        total = tqdm.format_sizeof(lines)
        log(f"inputs: generating {total} lines into {lake}")
        _generate(lake, config)
    return load_manifest(lake)


def prepare(work_dir: str, lines: int, seed: int) -> Inputs:
    """The cached inputs for (lines, seed), generated first when missing or stale."""
    config = sample_config(lines, seed)
    lake = os.path.join(work_dir, "inputs", f"lines-{lines}-seed-{seed}")
    return _read_files(lake, _cached(lake, config))


def prepare_steady(work_dir: str, lines: int, seed: int, days: int) -> Inputs:
    """The cached steady-state lake: ``days`` full landing dates of about ``lines`` lines each;
    ``files`` are what partition ``DAY`` reads (four full landing dates)."""
    config = steady_config(lines, seed, days)
    lake = os.path.join(work_dir, "inputs", f"steady-{days}-lines-{lines}-seed-{seed}")
    manifest = _cached(lake, config)
    inputs = _read_files(lake, manifest)
    own = f"{landing_dir(DAY)}/"
    day_lines = sum(manifest["files"][f]["lines"] for f in inputs.files if f.startswith(own))
    return replace(inputs, day_lines=day_lines, full_days=full_landing_days(config))
