"""Retention on a lake spanning 500 days, at a fixed instant: exactly what is deleted, trimmed and
kept per table; the dry run; landing held for unmaterialised or recent partitions; the refusal of
short windows; the tombstone stopping ingest; the Dagster job, its report and its schedule."""

from __future__ import annotations

import os
import shutil
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.defs.maintenance.retention import retention_daily, retention_job
from pipelines.defs.resources import LakeResource, RetentionResource
from pipelines.lib.ingest.landing import RETIRED_MARKER, LandingRetiredError
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.storage import Lake
from pipelines.lib.maintenance.retention import (
    REPORT_SCHEMA,
    TRIMMED_KEY,
    Windows,
    is_trimmed,
    plan_retention,
    run_retention,
)
from tests.conftest import DAY, event, line, new_bucket

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)  # a Monday, 03:00 UTC: the schedule's tick
TODAY = NOW.date()
FIRST = TODAY - timedelta(days=499)  # 2025-02-01: 500 landing days up to today
DAYS = [FIRST + timedelta(days=n) for n in range(499)]  # materialised partitions, to yesterday
UNREAD_LANDING = FIRST - timedelta(days=5)  # before the first partition: read by none
# Partitions whose ledger departs from "written at 02:00 the next day":
UNMATERIALISED = date(2025, 11, 27)  # no ledger at all
RECENT = date(2026, 4, 26)  # re-materialised 3 days ago
EXACT = date(2026, 4, 16)  # re-materialised exactly 7 days ago
JUST_UNDER = date(2026, 4, 6)  # re-materialised 7 days ago less one second
SEVERITIES = ["critical", "error", "warning", "critical", "info"]


def _days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _put(root: Path, rel: str, data: bytes, mtime: datetime | None = None) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def _ledger_written(day: date) -> datetime:
    special = {
        RECENT: NOW - timedelta(days=3),
        EXACT: NOW - timedelta(days=7),
        JUST_UNDER: NOW - timedelta(days=7) + timedelta(seconds=1),
    }
    return special.get(day, datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(1))


def _build(root: Path) -> None:
    tiny = _parquet(pa.table({"n": [1]}))
    for day in DAYS:
        d = day.isoformat()
        _put(root, f"events/event_type=click/event_date={d}/part-00000.parquet", tiny)
        errors = pa.table(
            {
                "event_id": [f"{d}-{i}" for i in range(len(SEVERITIES))],
                "severity": SEVERITIES,
                "event_date": [day] * len(SEVERITIES),
            }
        )
        _put(root, f"events/event_type=error/event_date={d}/part-00000.parquet", _parquet(errors))
        for zone in ("quarantine", "contracts", "quality"):
            _put(root, f"{zone}/event_date={d}/part-00000.parquet", tiny)
        if day != UNMATERIALISED:
            rel = f"ledger/event_date={d}/part-00000.parquet"
            _put(root, rel, tiny, _ledger_written(day))
        _put(root, f"rollups/traffic_daily/event_date={d}/part-00000.parquet", tiny)
        if day.weekday() == 0 and day + timedelta(days=6) < TODAY:
            _put(root, f"rollups/traffic_weekly/week_start={d}/part-00000.parquet", tiny)
        if day.day == 1 and (day + timedelta(days=31)).replace(day=1) <= TODAY:
            _put(root, f"rollups/traffic_monthly/month_start={d}/part-00000.parquet", tiny)
    for dt in [UNREAD_LANDING, *DAYS, TODAY]:
        _put(root, f"landing/dt={dt.isoformat()}/a.jsonl", b'{"x": 1}\n')
    # Not partitions of a known table: never touched, whatever their age.
    _put(root, "events/event_type=click/event_date=2020-13-01/part-00000.parquet", tiny)
    _put(root, "rollups/traffic_weekly/week_start=2024-01-02/part-00000.parquet", tiny)
    _put(root, "reports/data_docs/index.html", b"<html></html>")
    _put(root, "ops/other/x.json", b"{}")


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake500") / "lake"
    _build(root)
    return root


@pytest.fixture
def lake_root(built_lake: Path, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    shutil.copytree(built_lake, root)  # copy2: ledger mtimes survive
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _dates(root: Path, rel_dir: str, key: str = "event_date") -> set[date]:
    folder = root / rel_dir
    names = [p.name for p in folder.iterdir() if p.is_dir() and any(p.iterdir())]
    found = set()
    for name in names:
        try:
            found.add(date.fromisoformat(name.removeprefix(f"{key}=")))
        except ValueError:
            continue
    return found


def _retention(root: Path, *, dry_run: bool, run_id: str = "run-1", windows: Windows | None = None):
    return run_retention(
        Lake(str(root)),
        windows or Windows(),
        now=NOW,
        first_partition=FIRST,
        run_id=run_id,
        dry_run=dry_run,
    )


HELD_LANDING = (
    _days(UNMATERIALISED - timedelta(1), UNMATERIALISED + timedelta(2))
    | _days(RECENT - timedelta(1), RECENT + timedelta(2))
    | _days(JUST_UNDER - timedelta(1), JUST_UNDER + timedelta(2))
)


def test_a_run_deletes_trims_and_keeps_exactly_by_table(lake_root: Path) -> None:
    result = _retention(lake_root, dry_run=False)

    counts = {t: (n["delete"], n["trim"]) for t, n in result.by_table().items()}
    assert counts == {
        "contracts": (469, 0),
        "events/click": (409, 0),
        "events/error": (409, 60),
        "landing": (500 - 9 - len(HELD_LANDING), 0),
        "ledger": (99, 0),
        "quality": (99, 0),
        "quarantine": (469, 0),
        "rollups/traffic_daily": (99, 0),
        "rollups/traffic_monthly": (3, 0),
        "rollups/traffic_weekly": (13, 0),
    }
    yesterday = TODAY - timedelta(days=1)
    # events: 90 days (2026-03-17 is 90 days before 2026-06-15: kept).
    assert _dates(lake_root, "events/event_type=click") == _days(date(2026, 3, 17), yesterday)
    assert _dates(lake_root, "events/event_type=error") == _days(date(2026, 3, 17), yesterday)
    for zone in ("quarantine", "contracts"):
        assert _dates(lake_root, zone) == _days(date(2026, 5, 16), yesterday), zone
    assert _dates(lake_root, "quality") == _days(date(2025, 5, 11), yesterday)
    assert _dates(lake_root, "ledger") == _days(date(2025, 5, 11), yesterday) - {UNMATERIALISED}
    assert _dates(lake_root, "rollups/traffic_daily") == _days(date(2025, 5, 11), yesterday)
    # A week or a month counts from its last day: the week of 2025-05-05 ends on 2025-05-11.
    weeks = _dates(lake_root, "rollups/traffic_weekly", "week_start")
    # (2024-01-02 is a Tuesday: not a week partition, so never touched.)
    assert sorted(weeks)[:2] == [date(2024, 1, 2), date(2025, 5, 5)]
    months = _dates(lake_root, "rollups/traffic_monthly", "month_start")
    assert min(months) == date(2025, 5, 1) and len(months) == 13
    # Landing: a tombstone replaces the files of every retired date.
    landing = lake_root / "landing"
    with_files = {
        date.fromisoformat(p.parent.name.removeprefix("dt=")) for p in landing.glob("*/a.jsonl")
    }
    assert with_files == {UNREAD_LANDING} | _days(date(2026, 6, 7), TODAY) | HELD_LANDING
    retired = {date.fromisoformat(p.parent.name[3:]) for p in landing.glob(f"*/{RETIRED_MARKER}")}
    assert retired == _days(FIRST, TODAY) - with_files
    assert result.plan.unread_landing == [UNREAD_LANDING]
    # Never touched: folders that are not partitions, reports, ops.
    for rel in (
        "events/event_type=click/event_date=2020-13-01/part-00000.parquet",
        "rollups/traffic_weekly/week_start=2024-01-02/part-00000.parquet",
        "reports/data_docs/index.html",
        "ops/other/x.json",
    ):
        assert (lake_root / rel).is_file(), rel
    # A second run at the same instant finds nothing left to do.
    assert _retention(lake_root, dry_run=False, run_id="run-2").done == []


def test_dry_run_deletes_nothing_and_reports_the_same_plan(lake_root: Path) -> None:
    before = _snapshot(lake_root)
    dry = _retention(lake_root, dry_run=True, run_id="dry")
    after = _snapshot(lake_root)
    report = pq.read_table(lake_root / dry.report_path)
    assert {k: v for k, v in after.items() if not k.startswith("ops/retention/")} == before
    assert report.schema == REPORT_SCHEMA
    assert set(report["dry_run"].to_pylist()) == {True}

    real = _retention(lake_root, dry_run=False, run_id="real")
    real_report = pq.read_table(lake_root / real.report_path)
    plan_columns = ["table", "partition", "partition_date", "action", "files", "bytes", "reason"]
    assert report.select(plan_columns).equals(real_report.select(plan_columns))
    assert report.num_rows == len(real.done) == 2608
    # Deletions report their bytes in both; a trim's saving is measured only when applied.
    rows = {r["partition"]: r for r in real_report.to_pylist()}
    dry_rows = {r["partition"]: r for r in report.to_pylist()}
    trimmed = "events/event_type=error/event_date=2026-04-01"
    assert rows[trimmed]["action"] == "trim" and dry_rows[trimmed]["bytes_removed"] is None
    assert rows[trimmed]["bytes_removed"] is not None
    deleted = "quarantine/event_date=2025-02-01"
    assert rows[deleted]["bytes_removed"] == dry_rows[deleted]["bytes_removed"] > 0
    assert rows[deleted]["window_days"] == 30 and rows[deleted]["files"] == 1
    assert real.report_path.startswith("ops/retention/run_date=2026-06-15/20260615T030000Z-")


def test_error_partitions_keep_only_critical_rows_once(lake_root: Path) -> None:
    lake = Lake(str(lake_root))
    _retention(lake_root, dry_run=False)
    trimmed = lake_root / "events/event_type=error/event_date=2026-04-01"
    [only] = list(trimmed.iterdir())
    table = pq.read_table(only)
    assert table["severity"].to_pylist() == ["critical", "critical"]
    assert table["event_id"].to_pylist() == ["2026-04-01-0", "2026-04-01-3"]
    assert pq.read_metadata(only).metadata[TRIMMED_KEY.encode()] == b"critical_only"
    # The newest day old enough is trimmed, the next one is not.
    assert is_trimmed(lake, "events/event_type=error/event_date=2026-05-15/part-00000.parquet")
    untouched = "events/event_type=error/event_date=2026-05-16/part-00000.parquet"
    assert not is_trimmed(lake, untouched)
    assert pq.read_table(lake_root / untouched)["severity"].to_pylist() == SEVERITIES
    # A later run (a day later) reads the footers and trims only the day that aged into the band.
    later = plan_retention(lake, Windows(), now=NOW + timedelta(days=1), first_partition=FIRST)
    trims = [(a.partition_date, a.action) for a in later.actions if a.table == "events/error"]
    assert trims == [(date(2026, 3, 17), "delete"), (date(2026, 5, 16), "trim")]


def test_landing_waits_for_every_reading_partition_and_seven_days(lake_root: Path) -> None:
    plan = plan_retention(Lake(str(lake_root)), Windows(), now=NOW, first_partition=FIRST)
    landing = {a.partition_date: a for a in plan.actions if a.table == "landing"}
    # No ledger for 2025-11-27: the four landing dates it reads are kept.
    assert not HELD_LANDING & set(landing)
    # Re-materialised exactly 7 days ago: its landing dates go; one second less: they stay.
    assert _days(EXACT - timedelta(1), EXACT + timedelta(2)) <= set(landing)
    assert date(2026, 6, 6) in landing and date(2026, 6, 7) not in landing
    # The first partition date is read only by itself and the next partition.
    assert "(2025-02-01 .. 2025-02-02)" in landing[FIRST].reason
    assert landing[EXACT].window_days == 7


def test_landing_is_kept_when_a_reader_is_missing_even_if_old(lake_root: Path) -> None:
    # Every reader of 2025-11-26 .. 2025-11-29 is long past, but one never materialised.
    (lake_root / "ledger/event_date=2025-11-28/part-00000.parquet").unlink()
    plan = plan_retention(Lake(str(lake_root)), Windows(), now=NOW, first_partition=FIRST)
    landing = {a.partition_date for a in plan.actions if a.table == "landing"}
    assert not _days(date(2025, 11, 26), date(2025, 11, 30)) & landing
    assert date(2025, 11, 25) in landing and date(2025, 12, 1) in landing


@pytest.mark.parametrize("setting", ["errors_days", "landing_days_after_materialised"])
def test_a_window_shorter_than_late_arrival_refuses(lake_root: Path, setting: str) -> None:
    before = _snapshot(lake_root)
    with pytest.raises(ConfigError, match=rf"set retention\.{setting} to at least 2"):
        _retention(lake_root, dry_run=False, windows=Windows(**{setting: 1}))
    assert _snapshot(lake_root) == before
    with pytest.raises(ConfigError, match=r"set critical_errors_days to at least errors_days"):
        Windows(errors_days=60, critical_errors_days=45).validate()


def test_a_retired_landing_date_makes_ingest_fail_before_writing(lake) -> None:
    for dt in (DAY - timedelta(1), DAY):
        lake.land(dt, "a.jsonl", [line(event("click", DAY))])
    lake.ingest(DAY)
    ledger = lake.root / f"ledger/event_date={DAY}/part-00000.parquet"
    written = datetime.fromtimestamp(ledger.stat().st_mtime, UTC)
    forever = replace(
        Windows(**{f.name: 100_000 for f in fields(Windows)}), landing_days_after_materialised=7
    )
    result = run_retention(
        lake.lake,
        forever,
        now=written + timedelta(days=7),
        first_partition=DAY,
        run_id="r-1",
        dry_run=False,
    )
    # dt DAY-1 is read only by DAY (the first partition): retired. dt DAY waits for DAY+1.
    assert [a.partition for a in result.done] == [f"landing/dt={DAY - timedelta(1)}"]
    with lake.lake.open(f"landing/dt={DAY - timedelta(1)}/{RETIRED_MARKER}") as handle:
        tombstone = handle.read()
    assert b'"run_id": "r-1"' in tombstone and b'"files": 1' in tombstone
    before = _snapshot(lake.root)
    with pytest.raises(LandingRetiredError, match=r"_RETIRED\.json: retention deleted .* r-1"):
        lake.ingest(DAY)
    assert _snapshot(lake.root) == before


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)


def _run_config(**config: object) -> dict:
    return {"ops": {"apply_retention": {"config": config}}}


def test_the_job_writes_the_report_and_run_metadata(
    lake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", FIRST.isoformat())
    result = retention_job.execute_in_process(
        run_config=_run_config(dry_run=False, as_of=NOW.isoformat()),
        resources={"lake": LakeResource(root=str(lake_root)), "retention": RetentionResource()},
    )
    assert result.success
    [output] = [e for e in result.all_events if e.is_successful_output]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata["dry_run"] is False
    assert metadata["partitions_deleted"] == 2548 and metadata["partitions_trimmed"] == 60
    by_table = {r.data["table"]: r.data for r in metadata["by_table"].records}
    assert by_table["events/error"]["deleted"] == 409 and by_table["events/error"]["trimmed"] == 60
    assert metadata["bytes_removed"] == sum(r["bytes_removed"] for r in by_table.values())
    assert metadata["unread_landing_dates"] == 1
    [report] = (lake_root / "ops/retention/run_date=2026-06-15").iterdir()
    assert report.name == f"20260615T030000Z-{result.run_id}.parquet"
    assert metadata["report"] == str(report)
    rows = pq.read_table(report)
    assert rows.num_rows == 2608 and set(rows["run_id"].to_pylist()) == {result.run_id}
    assert result.output_for_node("apply_retention")["rollups/traffic_weekly"]["delete"] == 13
    assert not (lake_root / "events/event_type=click/event_date=2026-03-16").exists()


def test_the_job_is_a_dry_run_by_default(lake_root: Path) -> None:
    before = _snapshot(lake_root)
    result = retention_job.execute_in_process(
        run_config=_run_config(as_of=NOW.isoformat()),
        resources={"lake": LakeResource(root=str(lake_root)), "retention": RetentionResource()},
    )
    assert result.success
    after = _snapshot(lake_root)
    assert {k: v for k, v in after.items() if not k.startswith("ops/retention/")} == before


@pytest.mark.parametrize(
    ("resource", "config", "message"),
    [
        (
            RetentionResource(quarantine_days=1),
            {"dry_run": False},
            "retention.quarantine_days=1 is shorter than the late-arrival window",
        ),
        (
            RetentionResource(),
            {"dry_run": False, "as_of": "2999-01-01T00:00:00+00:00"},
            "is in the future",
        ),
    ],
)
def test_the_job_refuses_bad_settings_before_touching_data(
    lake_root: Path, resource: RetentionResource, config: dict, message: str
) -> None:
    before = _snapshot(lake_root)
    result = retention_job.execute_in_process(
        run_config=_run_config(**config),
        resources={"lake": LakeResource(root=str(lake_root)), "retention": resource},
        raise_on_error=False,
    )
    assert not result.success
    assert message in _failure(result)
    assert _snapshot(lake_root) == before


def test_the_daily_schedule_requests_a_real_run() -> None:
    assert retention_daily.cron_schedule == "0 3 * * *"
    assert retention_daily.execution_timezone == "UTC"
    assert retention_daily.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=NOW)
    [request] = retention_daily.evaluate_tick(context).run_requests
    assert request.run_key == "retention-2026-06-15"
    assert (
        request.run_config["ops"]
        == _run_config(dry_run=False, as_of="2026-06-15T03:00:00+00:00")["ops"]
    )


def test_retention_on_s3(s3_endpoint: str, s3_credentials: None) -> None:
    lake = Lake(
        f"s3://{new_bucket(s3_endpoint)}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}}
    )
    tiny = _parquet(pa.table({"n": [1]}))
    for rel in (
        "ledger/event_date=2025-06-02/part-00000.parquet",
        "events/event_type=click/event_date=2025-06-02/part-00000.parquet",
        "landing/dt=2025-06-01/a.jsonl",
        "landing/dt=2025-06-02/a.jsonl",
    ):
        with lake.open(rel, "wb") as handle:
            handle.write(tiny)
    [ledger] = lake.fs.ls(lake.path("ledger/event_date=2025-06-02"), detail=True)
    now = ledger["LastModified"] + timedelta(days=7)
    result = run_retention(
        lake, Windows(), now=now, first_partition=date(2025, 6, 2), run_id="s3", dry_run=False
    )
    assert sorted(a.partition for a in result.done) == [
        "events/event_type=click/event_date=2025-06-02",
        "landing/dt=2025-06-01",
        "ledger/event_date=2025-06-02",
    ]
    assert not lake.exists("events/event_type=click/event_date=2025-06-02/part-00000.parquet")
    assert [f.path for f in lake.list_files("landing/dt=2025-06-01")] == [
        f"landing/dt=2025-06-01/{RETIRED_MARKER}"
    ]
    assert lake.exists("landing/dt=2025-06-02/a.jsonl")  # partition 2025-06-03 never ran
    assert lake.exists(result.report_path)
