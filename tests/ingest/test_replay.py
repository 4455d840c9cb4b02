"""The replay job: after a schema version is published, the quarantined lines it makes valid move
into events/ through the same ingest, the ledger still balances, the ingest assets' partitions are
re-materialised in Dagster, and a second run changes nothing; lines landing no longer holds are
reported, not dropped."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES
from pipelines.defs.ingest.replay import REPLAY_OP, replay_quarantine
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.replay import plan_replay
from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.maintenance.retention import DELETE, Action, apply_action
from tests.conftest import DAY, LakeHelper, event, line
from tests.registries import copy_registry, publish, use_registry

NEW = "2.1.0"
INGEST_ASSETS = ["click", "error", "impression", "ranking", "request", "quarantine", "ledger"]


def _add_rerank_ms(doc: dict[str, Any]) -> None:
    doc["properties"]["rerank_ms"] = {
        "description": "Time spent re-ranking, milliseconds.",
        "type": "number",
        "minimum": 0,
        "x-pii": "none",
    }


def ranking_v12(seconds: float = 3600, **fields: Any) -> dict:
    """A ranking of version 2.1.0, with its new field."""
    return event("ranking", seconds=seconds, **{"schema_version": NEW, "rerank_ms": 12.5, **fields})


def _resources(lake: LakeHelper) -> dict[str, Any]:
    return {
        "lake": LakeResource(root=str(lake.root)),
        "pii": PiiResource(),
        "duckdb": DuckDBSettings(),
    }


def _ingest(lake: LakeHelper, instance: dg.DagsterInstance, day: date = DAY) -> None:
    result = dg.materialize(
        [build_ingest_assets(daily_partitions())],
        resources=_resources(lake),
        partition_key=day.isoformat(),
        instance=instance,
    )
    assert result.success


def _replay(
    lake: LakeHelper, instance: dg.DagsterInstance, *dates: str, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    return replay_quarantine.execute_in_process(
        run_config={"ops": {REPLAY_OP: {"config": {"event_dates": list(dates)}}}},
        resources=_resources(lake),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event_] = [
        e
        for e in result.all_node_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == REPLAY_OP
    ]
    return {k: v.value for k, v in event_.event_specific_data.metadata.items()}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for folder in ("events", "quarantine", "ledger"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _materialized(instance: dg.DagsterInstance, asset: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[DAY.isoformat()]),
        limit=100,
    )
    return len(records.records)


@pytest.fixture
def registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The repository's registry, and the same with ranking 2.1.0 published (rerank_ms added).
    Two folders: a registry is read once per folder."""
    before = copy_registry(tmp_path / "before")
    after = copy_registry(tmp_path / "after")
    publish(after, "ranking", NEW, _add_rerank_ms)
    use_registry(monkeypatch, before)
    return before, after


def test_published_lines_move_from_quarantine_to_events_once(
    lake: LakeHelper, registries: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, after = registries
    first = ranking_v12()
    lake.land(
        DAY,
        "a.jsonl",
        [
            line(event("click")),
            line(first),
            line(ranking_v12(seconds=3700, rerank_ms=3)),
            line(ranking_v12(seconds=3800, latency_ms=-1)),  # invalid under 2.1.0 too
            line(event("click", schema_version="7.0.0")),  # unknown before and after
            line(event("ranking", alpha="high")),  # a violation 2.1.0 does not change
            line(first),  # an exact copy: a duplicate once its original is stored
        ],
    )
    instance = dg.DagsterInstance.ephemeral()
    _ingest(lake, instance)
    assert [(r["line_no"], r["reason"]) for r in lake.quarantine()] == [
        (2, "unknown_schema_version"),
        (3, "unknown_schema_version"),
        (4, "unknown_schema_version"),
        (5, "unknown_schema_version"),
        (6, "schema_violation"),
        (7, "unknown_schema_version"),
    ]

    # Nothing published yet: nothing to change, nothing rewritten.
    untouched = _digest(lake.root)
    result = _replay(lake, instance)
    assert _output_metadata(result)["days_replayed"] == []
    assert _digest(lake.root) == untouched

    use_registry(monkeypatch, after)
    result = _replay(lake, instance)
    summary = _output_metadata(result)
    assert summary["days_replayed"] == [DAY.isoformat()]
    assert summary["candidate_lines"] == 6
    assert summary["lines_now_stored"] == 3  # two rows and their duplicate
    assert summary["lines_quarantined_for_another_reason"] == 1
    assert summary["lines_not_replayable"] == 0

    rankings = sorted(lake.events("ranking"), key=lambda r: r["landing_line"])
    assert [(r["landing_line"], r["schema_version"], r["rerank_ms"]) for r in rankings] == [
        (2, NEW, 12.5),
        (3, NEW, 3.0),
    ]
    assert [(r["line_no"], r["reason"], r["detail"]) for r in lake.quarantine()] == [
        (4, "schema_violation", "/latency_ms:minimum"),
        (5, "unknown_schema_version", "schema_version is not an accepted version of click"),
        (6, "schema_violation", "/alpha:type"),
    ]
    audit = audit_ledger(lake.lake, DAY)
    assert audit.passed and audit.lines_taken == 7
    [ledger] = lake.lake.read_partition(f"ledger/event_date={DAY}").to_pylist()
    assert (ledger["rows_written"], ledger["quarantined"], ledger["duplicates"]) == (3, 3, 1)

    # Dagster saw the day re-materialised, and the ledger check pass for it.
    assert {a: _materialized(instance, a) for a in INGEST_ASSETS} == dict.fromkeys(INGEST_ASSETS, 2)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == LEDGER_BALANCES and evaluation.passed

    # Again: nothing left to change, so nothing is rewritten or re-materialised.
    replayed = _digest(lake.root)
    again = _replay(lake, instance)
    assert _output_metadata(again)["days_replayed"] == []
    assert _output_metadata(again)["candidate_lines"] == 3
    assert _digest(lake.root) == replayed
    assert {a: _materialized(instance, a) for a in INGEST_ASSETS} == dict.fromkeys(INGEST_ASSETS, 2)


def test_lines_whose_landing_was_retired_are_reported_not_replayed(
    lake: LakeHelper, registries: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, after = registries
    name = lake.land(DAY, "a.jsonl", [line(ranking_v12()), line(event("click"))])
    instance = dg.DagsterInstance.ephemeral()
    _ingest(lake, instance)
    folder = landing_dir(DAY)
    size = (lake.root / name).stat().st_size
    retired = Action("landing", folder, DAY, DELETE, (name,), size, 7, "test: past its window")
    apply_action(lake.lake, retired, run_id="retention-run", now=datetime.now(UTC))
    before = _digest(lake.root)

    use_registry(monkeypatch, after)
    result = _replay(lake, instance)
    summary = _output_metadata(result)
    assert summary["days_replayed"] == []
    assert summary["lines_not_replayable"] == 1
    assert "retention deleted the landing files" in summary["days_not_replayable"][DAY.isoformat()]
    [sample] = summary["sample_not_replayable"]
    assert (sample["landing_file"], sample["line_no"], sample["reason"]) == (
        name,
        1,
        "unknown_schema_version",
    )
    assert _digest(lake.root) == before
    assert [r["reason"] for r in lake.quarantine()] == ["unknown_schema_version"]


def test_a_landing_file_gone_without_a_tombstone_blocks_the_day(
    lake: LakeHelper, registries: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, after = registries
    lake.land(DAY, "a.jsonl", [line(ranking_v12())])
    other = lake.land(DAY, "b.jsonl", [line(event("click"))])
    lake.ingest()
    (lake.root / other).unlink()
    use_registry(monkeypatch, after)
    [plan] = plan_replay(lake.lake)
    assert not plan.replay
    assert "are gone" in plan.blocked and other in plan.blocked
    assert plan.not_replayable[0]["why"] == plan.blocked


def test_only_the_chosen_days_are_replayed(
    lake: LakeHelper, registries: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, after = registries
    next_day = DAY + timedelta(days=1)
    lake.land(DAY, "a.jsonl", [line(ranking_v12())])
    lake.land(next_day, "a.jsonl", [line(event("ranking", next_day, schema_version=NEW))])
    for day in (DAY, next_day):
        lake.ingest(day)
    use_registry(monkeypatch, after)
    instance = dg.DagsterInstance.ephemeral()
    summary = _output_metadata(_replay(lake, instance, next_day.isoformat()))
    assert summary["days_replayed"] == [next_day.isoformat()]
    assert lake.events("ranking", DAY) == []
    assert len(lake.events("ranking", next_day)) == 1


def test_a_bad_date_fails_the_run_naming_the_setting(lake: LakeHelper) -> None:
    lake.root.mkdir(parents=True)  # an empty lake: a root that does not exist is refused first
    result = _replay(lake, dg.DagsterInstance.ephemeral(), "yesterday", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"ops.{REPLAY_OP}.config.event_dates" in str(failure.event_specific_data.error)
