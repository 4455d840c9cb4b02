"""Ingest refuses to re-publish a day when landing files its ledger lists are gone and not retired
(lib/ingest/wipe_guard.py): the stored day stays byte for byte, the message names the files and
what to
do. A retired landing folder is retention's business, and an operator may accept the loss of
named landing dates for one run."""

from __future__ import annotations

import shutil
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.landing import (
    RETIRED_MARKER,
    LandingRetiredError,
    landing_dates,
    landing_files,
)
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.wipe_guard import (
    SAMPLE_SIZE,
    MissingLandingFilesError,
    missing_landing_files,
    refuse_to_wipe,
)
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.maintenance.retention import Windows, run_retention
from tests.conftest import DAY, event, line

BEFORE, AFTER = DAY - timedelta(days=1), DAY + timedelta(days=1)


def _stored(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file ingest publishes (events, quarantine, ledger): its bytes and mtime."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for zone in ("events", "quarantine", "ledger")
        for p in sorted((root / zone).rglob("*"))
        if p.is_file()
    }


def _rows(lake) -> dict[str, int]:
    return {t: len(lake.events(t)) for t in ("request", "click", "impression") if _has(lake, t)} | {
        "quarantine": len(lake.quarantine())
    }


def _has(lake, event_type: str) -> bool:
    return (lake.root / f"events/event_type={event_type}/event_date={DAY}").exists()


def _build_day(lake) -> None:
    """A small day read from three landing dates, with a quarantined line."""
    lake.land(BEFORE, "early.jsonl", [line(event("request", DAY, 60)) for _ in range(3)])
    lake.land(DAY, "a.jsonl", [line(event("request")) for _ in range(20)])
    lake.land(
        DAY, "b.jsonl.gz", [line(event("click")) for _ in range(10)] + [b"{not json"], gz=True
    )
    lake.land(AFTER, "late.jsonl", [line(event("impression", DAY, 80000)) for _ in range(5)])
    lake.ingest(DAY)


def test_a_re_run_after_landing_files_moved_away_is_refused_and_publishes_nothing(lake, tmp_path):
    _build_day(lake)
    before = _stored(lake.root)
    rows = _rows(lake)
    assert rows == {"request": 23, "click": 10, "impression": 5, "quarantine": 1}
    # The case: the day's landing folder moved away, not retired by retention.
    moved = tmp_path / "moved"
    shutil.move(lake.root / f"landing/dt={DAY}", moved)

    with pytest.raises(MissingLandingFilesError) as refused:
        lake.ingest(DAY)

    assert refused.value.missing == {
        f"landing/dt={DAY}/a.jsonl": DAY,
        f"landing/dt={DAY}/b.jsonl.gz": DAY,
    }
    message = str(refused.value)
    assert message.startswith(
        "2025-06-02 was not re-ingested: 2 landing file(s) its published ledger lists are "
        "missing, no longer read (a link leading out of landing/) or shorter than when they were "
        "read, and their landing folders were not retired: landing/dt=2025-06-02/a.jsonl, "
        "landing/dt=2025-06-02/b.jsonl.gz. "
    )
    assert "nothing was published and the stored day is unchanged" in message
    assert "Restore the files to landing/dt=2025-06-02/" in message
    assert 'resources.duckdb.config.accept_missing_landing: ["2025-06-02"]' in message
    assert "\n" not in message
    # Nothing written: the same bytes, the same mtimes, and the ledger still proves the day.
    assert _stored(lake.root) == before
    assert not (lake.root / f"landing/dt={DAY}").exists()
    assert audit_ledger(lake.lake, DAY).passed

    # Restored, the day rebuilds as it was; a file that arrived since is no reason to refuse.
    shutil.move(moved, lake.root / f"landing/dt={DAY}")
    lake.ingest(DAY)
    assert _rows(lake) == rows
    lake.land(DAY, "c.jsonl", [line(event("click")) for _ in range(4)])
    lake.ingest(DAY)
    assert _rows(lake) == {**rows, "click": 14}


def test_the_message_names_a_bounded_sample_and_the_count(lake):
    names = [f"f{n:02d}.jsonl" for n in range(SAMPLE_SIZE + 3)]
    for name in names:
        lake.land(DAY, name, [line(event("request"))])
    lake.ingest(DAY)
    before = _stored(lake.root)
    for name in names[1:]:
        (lake.root / f"landing/dt={DAY}/{name}").unlink()

    with pytest.raises(MissingLandingFilesError) as refused:
        lake.ingest(DAY)

    message = str(refused.value)
    assert f"{SAMPLE_SIZE + 2} landing file(s)" in message
    shown = names[1 : SAMPLE_SIZE + 1]
    assert f": {', '.join(f'landing/dt={DAY}/{n}' for n in shown)} and 2 more. " in message
    assert names[-1] not in message and names[0] not in message
    assert len(refused.value.missing) == SAMPLE_SIZE + 2
    assert _stored(lake.root) == before


def test_a_retired_landing_folder_is_not_missing(lake, tmp_path):
    lake.land(BEFORE, "a.jsonl", [line(event("click", DAY))])
    lake.land(DAY, "b.jsonl", [line(event("click", DAY))])
    lake.land(DAY, "c.jsonl", [line(event("click", DAY))])
    lake.ingest(DAY)
    written = datetime.fromtimestamp(
        (lake.root / f"ledger/event_date={DAY}/part-00000.parquet").stat().st_mtime, UTC
    )
    # Real retention: dt BEFORE is read only by DAY (the first partition), so it is retired.
    keep = replace(
        Windows(**{f.name: 100_000 for f in fields(Windows)}), landing_days_after_materialised=7
    )
    done = run_retention(
        lake.lake, keep, now=written + timedelta(days=7), first_partition=DAY, run_id="r-1",
        dry_run=False,
    )  # fmt: skip
    assert [a.partition for a in done.done] == [f"landing/dt={BEFORE}"]
    assert (lake.root / f"landing/dt={BEFORE}/{RETIRED_MARKER}").exists()
    assert not (lake.root / f"landing/dt={BEFORE}/a.jsonl").exists()
    (lake.root / f"landing/dt={DAY}/c.jsonl").rename(tmp_path / "c.jsonl")
    present = [f for dt in landing_dates(DAY) for f in landing_files(lake.lake, dt)]

    # The retired folder's file is accepted as gone; only the one moved by hand is missing.
    assert missing_landing_files(lake.lake, DAY, [f.path for f in present]) == {
        f"landing/dt={DAY}/c.jsonl": DAY
    }
    (tmp_path / "c.jsonl").rename(lake.root / f"landing/dt={DAY}/c.jsonl")
    present = [f for dt in landing_dates(DAY) for f in landing_files(lake.lake, dt)]
    refuse_to_wipe(lake.lake, DAY, present)  # nothing missing but what retention retired

    # Ingest itself still leaves a day that reads a retired date as stored (its rows are final).
    before = _stored(lake.root)
    with pytest.raises(LandingRetiredError):
        lake.ingest(DAY)
    assert _stored(lake.root) == before


def test_an_operator_may_accept_the_loss_of_named_landing_dates(lake, tmp_path):
    _build_day(lake)
    before = _stored(lake.root)
    shutil.move(lake.root / f"landing/dt={DAY}", tmp_path / "moved")

    # Accepting another date's losses does not cover this one.
    with pytest.raises(MissingLandingFilesError):
        lake.ingest(DAY, accept_missing_landing=frozenset({BEFORE}))
    assert _stored(lake.root) == before

    logged: list[str] = []
    present = [f for dt in landing_dates(DAY) for f in landing_files(lake.lake, dt)]
    refuse_to_wipe(lake.lake, DAY, present, frozenset({DAY}), logged.append)
    assert logged == [
        "2025-06-02: publishing without 2 landing file(s) its ledger lists, accepted as lost "
        "(accept_missing_landing: 2025-06-02); the rows read from them leave the lake: "
        "landing/dt=2025-06-02/a.jsonl, landing/dt=2025-06-02/b.jsonl.gz"
    ]
    result = lake.ingest(DAY, accept_missing_landing=frozenset({DAY}))
    assert {t: n for t, n in result.rows.items() if n} == {"request": 3, "impression": 5}
    assert {r["landing_file"] for r in lake.ledger()} == {
        f"landing/dt={BEFORE}/early.jsonl",
        f"landing/dt={AFTER}/late.jsonl",
    }
    # Published without them, the day is what landing now holds: a re-run is no longer refused.
    lake.ingest(DAY)


def _materialise(lake, duckdb: DuckDBSettings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_ingest_assets(daily_partitions())],
        partition_key=DAY.isoformat(),
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": duckdb,
        },
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_the_ingest_asset_fails_with_the_message_and_the_override_is_a_resource_setting(
    lake, tmp_path
):
    _build_day(lake)
    before = _stored(lake.root)
    shutil.move(lake.root / f"landing/dt={DAY}", tmp_path / "moved")

    refused = _materialise(lake, DuckDBSettings(memory_limit="512MB", threads=1))
    assert not refused.success
    (failure,) = refused.get_step_failure_events()
    data = failure.event_specific_data.user_failure_data
    assert data.description.startswith("2025-06-02 was not re-ingested: 2 landing file(s)")
    assert "landing/dt=2025-06-02/b.jsonl.gz" in data.description
    assert data.metadata["missing_landing_files"].value == 2
    assert _stored(lake.root) == before

    # The override is run configuration of the duckdb resource, as an operator sets it.
    defs = dg.Definitions(
        assets=[build_ingest_assets(daily_partitions())],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(memory_limit="512MB", threads=1),
        },
    )
    job = defs.resolve_implicit_global_asset_job_def()
    accepted = job.execute_in_process(
        partition_key=DAY.isoformat(),
        run_config={"resources": {"duckdb": {"config": {"accept_missing_landing": [str(DAY)]}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert accepted.success
    assert len(lake.events("request")) == 3

    with pytest.raises(ConfigError, match=r"accept_missing_landing: 'June 2' is not a date"):
        DuckDBSettings(accept_missing_landing=["June 2"]).ingest_settings()


def test_a_day_never_published_has_nothing_to_refuse(lake):
    assert missing_landing_files(lake.lake, date(2025, 6, 9), []) == {}
