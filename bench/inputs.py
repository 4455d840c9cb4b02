"""Benchmark inputs: one generated event day, cached under the work dir by (lines, seed)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from typing import Any

from bench.log import log
from pipelines.lib.ingest import landing_dates
from pipelines.lib.landing import list_landing_files
from pipelines.lib.progress import Progress, human_count
from pipelines.lib.sample import SampleConfig, generate, load_manifest, manifest_path
from pipelines.lib.storage import Lake

DAY = date(2025, 6, 2)


@dataclass(frozen=True)
class Inputs:
    """A lake root holding the generated landing zone, and what partition ``DAY`` reads of it."""

    lake: str
    files: tuple[str, ...]  # relative to ``lake``, in (dt, name) order
    lines: int  # landing lines in those files


def sample_config(lines: int, seed: int) -> SampleConfig:
    """One event day of about ``lines`` landing lines, with the generator's usual shares."""
    return SampleConfig(start=DAY, days=1, seed=seed).for_lines_per_day(lines)


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
    with Progress(expected, "[bench] generate", "events") as progress:
        generate(config, partial, on_progress=progress.advance)
    os.rename(partial, lake)


def _read_files(lake: str, manifest: dict[str, Any]) -> Inputs:
    files = tuple(f.path for f in list_landing_files(Lake(lake), landing_dates(DAY)))
    lines = sum(manifest["files"][f]["lines"] for f in files)
    return Inputs(lake, files, lines)


def prepare(work_dir: str, lines: int, seed: int) -> Inputs:
    """The cached inputs for (lines, seed), generated first when missing or stale."""
    config = sample_config(lines, seed)
    lake = os.path.join(work_dir, "inputs", f"lines-{lines}-seed-{seed}")
    if _is_current(lake, config):
        log(f"inputs: reusing {lake}")
    else:
        log(f"inputs: generating {human_count(lines)} lines into {lake}")
        _generate(lake, config)
    return _read_files(lake, load_manifest(lake))
