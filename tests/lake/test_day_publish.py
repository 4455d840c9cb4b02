"""A day's seven tables publish as one unit (lib/lake/publish.py). A fault at any step of the
publish
leaves the day entirely the previous version, or a journal that ``recover`` (or the next ingest, a
contracts or rollups run, the ``day_publish_recovery`` sensor) rolls forward to the new version
entirely; either way the ledger agrees with the tables. Real files, real DuckDB and Parquet:
faults are raised from the publish's own hook, or the process ends there with ``os._exit``."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.ingest.recovery import build_recovery_sensor
from pipelines.defs.resources import LakeResource
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake import publish
from pipelines.lib.lake.lease import Lease, Owner
from pipelines.lib.lake.paths import PROJECT_ROOT, events_dir, ledger_dir, quarantine_dir
from pipelines.lib.lake.publish import DayPublishError, journal_path, pending_days, recover
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup
from pipelines.lib.schemas.registry import event_types
from tests.conftest import DAY, KEY, LakeHelper, event, line, new_bucket

TABLES = [*event_types(), "quarantine", "ledger"]
BEFORE_JOURNAL = [f"{step}:{t}" for t in TABLES for step in (publish.WRITING, publish.STAGED)]
AFTER_JOURNAL = [
    publish.JOURNAL,
    *[f"{publish.APPLIED}:{t}" for t in TABLES],
    publish.JOURNAL_REMOVED,
]


class Crash(Exception):
    """What the fault hook raises at its step."""


def crash_at(target: str):
    def fault(step: str) -> None:
        if step == target:
            raise Crash(step)

    return fault


def _folders(day=DAY) -> dict[str, str]:
    folders = {t: events_dir(t, day) for t in event_types()}
    return folders | {"quarantine": quarantine_dir(day), "ledger": ledger_dir(day)}


def _state(lake: Lake) -> dict[str, list[dict]]:
    """Every table of the day as its rows (what a reader of the folder gets)."""
    return {t: lake.read_partition(rel).to_pylist() for t, rel in _folders().items()}


def _land_v1(land) -> None:
    original = event("click")
    land(DAY, "a.jsonl", [line(event("request")), line(original), line(original), b"{bad"])
    land(DAY + timedelta(days=1), "b.jsonl.gz", [line(event("impression"))], gz=True)


# A new landing file that changes every table of the day (the same lines in every lake).
V2_LINES = [line(event(t)) for t in event_types() for _ in range(3)] + [b"not json"]


def _land_v2(land) -> None:
    land(DAY, "c.jsonl", V2_LINES)


def _assert_whole(lake: Lake, expected: dict[str, list[dict]]) -> None:
    assert _state(lake) == expected
    assert audit_ledger(lake, DAY).passed
    assert not lake.exists(journal_path(DAY))


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A lake holding the old version of the day with the new version's landing file beside
    it (copied for each test), and both versions' rows from clean runs."""
    root = tmp_path_factory.mktemp("versions") / "lake"
    helper = LakeHelper(root)
    _land_v1(helper.land)
    helper.ingest()
    old = _state(helper.lake)
    template = tmp_path_factory.mktemp("template") / "lake"
    shutil.copytree(root, template)
    _land_v2(helper.land)
    helper.ingest()
    new = _state(helper.lake)
    assert all(old[t] != new[t] for t in TABLES), "the new version must change every table"
    _land_v2(LakeHelper(template).land)
    return template, old, new


@pytest.fixture
def day_lake(versions, tmp_path) -> LakeHelper:
    template, _, _ = versions
    shutil.copytree(template, tmp_path / "lake")
    return LakeHelper(tmp_path / "lake")


def _staging_left(root: Path) -> list[str]:
    area = root / publish.STAGING_AREA
    return sorted(p.name for p in area.iterdir()) if area.exists() else []


@pytest.mark.parametrize("step", BEFORE_JOURNAL)
def test_a_fault_before_the_journal_leaves_the_previous_version(day_lake, versions, step):
    _, old, _ = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at(step))
    _assert_whole(day_lake.lake, old)
    assert _staging_left(day_lake.root) == []  # the failed publish removed what it staged
    assert recover(day_lake.lake, DAY) is None


@pytest.mark.parametrize("step", AFTER_JOURNAL)
def test_a_fault_after_the_journal_is_rolled_forward_to_the_new_version(day_lake, versions, step):
    _, _, new = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at(step))
    committed = step != publish.JOURNAL_REMOVED
    assert pending_days(day_lake.lake) == ([DAY] if committed else [])
    recovery = recover(day_lake.lake, DAY)
    if committed:
        assert recovery is not None
        assert sorted(recovery.rolled_forward + recovery.already_applied) == sorted(TABLES)
        done = step.split(":")[1] if ":" in step else None
        assert recovery.already_applied == (TABLES[: TABLES.index(done) + 1] if done else [])
    _assert_whole(day_lake.lake, new)
    if not committed:  # the journal was removed, the staging not: the next publish removes it
        assert _staging_left(day_lake.root)
        day_lake.ingest()
        _assert_whole(day_lake.lake, new)
    assert _staging_left(day_lake.root) == []


def test_a_recovery_cut_short_is_completed_by_the_next_one(day_lake, versions):
    """Re-applying never swaps the previous version back: a table already swapped is skipped."""
    _, _, new = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at("applied:click"))
    with pytest.raises(Crash):
        recover(day_lake.lake, DAY, fault=crash_at("applied:impression"))
    recovery = recover(day_lake.lake, DAY)
    assert recovery.already_applied[:3] == ["click", "error", "impression"]
    _assert_whole(day_lake.lake, new)


def test_the_next_ingest_completes_the_publish_before_it_reads_anything(day_lake, versions):
    """The next run recovers first: even if it fails itself before publishing, the day is whole."""
    _, _, new = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at("applied:error"))
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at("staged:click"))
    _assert_whole(day_lake.lake, new)


def test_a_rollup_never_builds_on_a_half_published_day(day_lake, versions):
    _, _, new = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at("applied:impression"))
    build_rollup(day_lake.lake, MODELS_BY_NAME["errors_daily"], DAY)
    _assert_whole(day_lake.lake, new)
    assert not (day_lake.root / "_leases" / "ingest" / f"{DAY}.json").exists()


def test_the_recovery_sensor_repairs_a_dead_publish_and_reports_it(day_lake, versions):
    _, _, new = versions
    with pytest.raises(Crash):
        ingest_partition(day_lake.lake, DAY, KEY, fault=crash_at("applied:request"))
    sensor = build_recovery_sensor()
    resources = {"lake": LakeResource(root=str(day_lake.root))}
    # A live publisher (here: a lease held by another owner) is left alone.
    with Lease(day_lake.lake, "ingest", DAY.isoformat(), Owner("elsewhere", 1)):
        result = sensor(dg.build_sensor_context(resources=resources))
    assert result.asset_events == [] and pending_days(day_lake.lake) == [DAY]
    result = sensor(dg.build_sensor_context(resources=resources))
    [observation] = result.asset_events
    assert observation.partition == DAY.isoformat()
    assert observation.metadata["rolled_forward"].value == "quarantine, ledger"
    _assert_whole(day_lake.lake, new)


def test_a_swap_that_fails_names_what_is_new_and_what_is_not_and_recovery_completes_it(lake):
    """A real failure between two swaps: a file where the error table's folder must go."""
    _land_v1(lake.land)
    blocker = lake.root / "events" / "event_type=error"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    with pytest.raises(DayPublishError) as caught:
        lake.ingest()
    message = str(caught.value)
    assert "while applying table error" in message
    assert "new version published: click; still the previous version: error, impression" in message
    assert pending_days(lake.lake) == [DAY]
    blocker.unlink()
    recovery = recover(lake.lake, DAY)
    assert recovery.already_applied == ["click"]
    assert audit_ledger(lake.lake, DAY).passed and not lake.lake.exists(journal_path(DAY))
    assert len(lake.events("error")) == 0 and len(lake.events("click")) == 1


_CRASHING_RUN = """
import os, sys
from datetime import date
from pipelines.lib.ingest.partition import ingest_partition
from pipelines.lib.lake.storage import Lake
from tests.conftest import KEY

def fault(step):
    if step == sys.argv[2]:
        os._exit(137)  # no finally, no clean-up: as kill -9 would leave it

ingest_partition(Lake(sys.argv[1]), date.fromisoformat(sys.argv[3]), KEY, fault=fault)
sys.exit("the run was not cut")
"""


@pytest.mark.parametrize(
    "step", ["writing:click", "staged:ledger", "journal", "applied:click", "journal_removed"]
)
def test_a_process_killed_mid_publish_leaves_a_whole_day(day_lake, versions, step):
    _, old, new = versions
    run = subprocess.run(
        [sys.executable, "-c", _CRASHING_RUN, str(day_lake.root), step, DAY.isoformat()],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 137, run.stderr
    committed = step in AFTER_JOURNAL
    if not committed:
        _assert_whole(day_lake.lake, old)
        assert _staging_left(day_lake.root)  # garbage, not referenced by any journal
    recover(day_lake.lake, DAY)
    _assert_whole(day_lake.lake, new if committed else old)
    day_lake.ingest()
    _assert_whole(day_lake.lake, new)
    assert _staging_left(day_lake.root) == []


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.skip(f"mounting a 4 MiB tmpfs is not permitted here (needs root, as CI): {detail}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_names_the_table_and_file_and_keeps_the_previous_version(small_disk):
    helper = LakeHelper(small_disk / "lake")
    _land_v1(helper.land)
    helper.ingest()
    old = _state(helper.lake)
    published = sum(
        f.stat().st_size for rel in _folders().values() for f in (helper.root / rel).iterdir()
    )
    _land_v2(helper.land)
    # Fill the disk but for about half of what the new version needs: some tables stage, one
    # does not fit.
    stats = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - published // 2))
    with pytest.raises(DayPublishError) as caught:
        helper.ingest()
    error = caught.value
    assert error.errno == errno.ENOSPC
    message = str(error)
    table = re.search(r"while writing table (\w+) \((\S+)\)", message)
    assert table, message
    assert table[1] in TABLES and table[2].endswith(f"/{table[1]}/part-00000.parquet")
    assert "nothing was published" in message and "is still the previous version" in message
    discarded = re.search(r"the tables staged so far \(([a-z_, ]+)\) were discarded", message)
    assert discarded and discarded[1] != "none", message  # it failed part-way through the day
    _assert_whole(helper.lake, old)
    assert _staging_left(helper.root) == []

    filler.unlink()
    helper.ingest()
    assert audit_ledger(helper.lake, DAY).passed
    assert len(helper.events("click")) == len(old["click"]) + 3


def test_on_s3_a_publish_cut_between_two_copies_is_rolled_forward(s3_endpoint, s3_credentials):
    lake = Lake(
        f"s3://{new_bucket(s3_endpoint)}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}}
    )

    def land(dt, name, lines, gz=False):
        import gzip

        data = b"\n".join(lines) + b"\n"
        lake.fs.pipe(lake.path(f"landing/dt={dt}/{name}"), gzip.compress(data) if gz else data)

    _land_v1(land)
    ingest_partition(lake, DAY, KEY, IngestSettings())
    old = _state(lake)
    _land_v2(land)
    with pytest.raises(Crash):
        ingest_partition(lake, DAY, KEY, fault=crash_at("applied:error"))
    assert pending_days(lake) == [DAY]
    state = _state(lake)
    assert state["click"] != old["click"] and state["ledger"] == old["ledger"]  # half-published
    with pytest.raises(Crash):  # a recovery cut short in turn
        recover(lake, DAY, fault=crash_at("applied:impression"))
    recovery = recover(lake, DAY)
    assert recovery.already_applied[:3] == ["click", "error", "impression"]
    assert audit_ledger(lake, DAY).passed and not lake.exists(journal_path(DAY))
    assert lake.list_dirs(publish.STAGING_AREA) == []
    new = _state(lake)
    assert all(new[t] != old[t] for t in TABLES)
    assert all(
        pq.read_metadata(lake.open(f.path)).metadata[publish.PUBLISH_ID_KEY.encode()].decode()
        == recovery.publish_id
        for rel in _folders().values()
        for f in lake.parquet_files(rel)
    )


def test_the_operations_fault_matrix_lists_every_step_of_the_publish():
    text = (PROJECT_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Atomic day publish", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)", section, flags=re.MULTILINE))
    assert listed == set(publish.STEPS)
