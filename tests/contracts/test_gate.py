"""The family checks gate the day in Dagster: below error_below the check fails with ERROR and
what depends on the contracts does not build in that run; between the thresholds it warns and
the day goes on."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from pipelines.defs.contracts.assets import build_contracts_asset
from pipelines.defs.contracts.checks import build_family_check
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.keys import CONTRACTS
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import (
    ContractsResource,
    DuckDBSettings,
    LakeResource,
    PiiResource,
    RollupsResource,
)
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.lib.contracts.rules import CONSISTENCY, FAMILIES
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.rollups.run import MODELS
from tests.conftest import DAY, event, line

PROBE = "downstream_of_contracts"


def _chain(seconds: float) -> list[bytes]:
    """request -> ranking -> impression -> click, consistent (the schemas' examples agree)."""
    rid = str(uuid.uuid4())
    return [
        line(event("request", seconds=seconds, request_id=rid)),
        line(event("ranking", seconds=seconds + 0.1, request_id=rid)),
        line(event("impression", seconds=seconds + 0.3, request_id=rid)),
        line(event("click", seconds=seconds + 5, request_id=rid)),
    ]


def _orphan_click(seconds: float) -> bytes:
    return line(event("click", seconds=seconds, request_id=str(uuid.uuid4())))


def _run(lake, lines: list[bytes], **contracts: float) -> dg.ExecuteInProcessResult:
    lake.land(DAY, "a.jsonl", lines)
    partitions = daily_partitions()

    @dg.asset(name=PROBE, deps=[CONTRACTS], partitions_def=partitions)
    def probe() -> None:
        """Stands for the day's rollups."""

    return dg.materialize(
        [
            build_ingest_assets(partitions),
            build_contracts_asset(partitions),
            *[build_family_check(f, partitions) for f in FAMILIES],
            probe,
        ],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(),
            "contracts": ContractsResource(**contracts),
        },
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_a_clean_day_passes_every_family_and_builds_downstream(lake):
    lines = [ln for i in range(5) for ln in _chain(3600 + 60 * i)]
    result = _run(lake, lines)
    checks = _evaluations(result)
    assert set(checks) == set(FAMILIES)
    assert all(c.passed for c in checks.values())
    assert {c.metadata["rate"].value for c in checks.values()} == {1.0}
    assert checks[CONSISTENCY].metadata["checked"].value == 20
    assert checks[CONSISTENCY].metadata["next_day_ingested"].value is False
    assert PROBE in _materialized(result)


def test_a_day_below_error_below_fails_blocking_and_downstream_does_not_build(lake):
    # 25 chains (100 events) and 2 orphan clicks: consistency 100/102 < 0.99.
    lines = [ln for i in range(25) for ln in _chain(3600 + 60 * i)]
    orphans = [_orphan_click(7200), _orphan_click(7300)]
    result = _run(lake, lines + orphans)
    checks = _evaluations(result)
    consistency = checks[CONSISTENCY]
    assert not consistency.passed
    assert consistency.severity == dg.AssetCheckSeverity.ERROR
    assert consistency.metadata["failed"].value == 2
    assert consistency.metadata["rate"].value == pytest.approx(100 / 102)
    sample = consistency.metadata["sample_offenders"].value
    assert sorted(s["event_type"] for s in sample) == ["click", "click"]
    assert {s["rule"] for s in sample} == {"click_has_impression"}
    assert CONTRACTS in _materialized(result)
    assert PROBE not in _materialized(result)
    assert not result.success


def test_a_bad_day_does_not_build_its_real_daily_rollup_in_the_same_run(lake):
    lake.land(DAY, "a.jsonl", [_orphan_click(7200 + i) for i in range(3)])
    partitions = daily_partitions()
    [traffic] = [m for m in MODELS if m.name == "traffic_daily"]
    result = dg.materialize(
        [
            build_ingest_assets(partitions),
            build_contracts_asset(partitions),
            *[build_family_check(f, partitions) for f in FAMILIES],
            build_rollup_asset(traffic, partitions),
        ],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(),
            "contracts": ContractsResource(),
            "rollups": RollupsResource(),
        },
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )
    assert _evaluations(result)[CONSISTENCY].severity == dg.AssetCheckSeverity.ERROR
    assert "traffic_daily" not in _materialized(result)
    assert not (lake.root / "rollups").exists()


def test_a_day_between_the_thresholds_warns_and_goes_on(lake):
    # 50 chains (200 events) and 1 orphan: 200/201 = 0.995, between 0.99 and 0.999.
    lines = [ln for i in range(50) for ln in _chain(3600 + 60 * i)]
    result = _run(lake, [*lines, _orphan_click(7200)])
    consistency = _evaluations(result)[CONSISTENCY]
    assert not consistency.passed
    assert consistency.severity == dg.AssetCheckSeverity.WARN
    assert PROBE in _materialized(result)


def test_thresholds_are_configuration(lake):
    # The same 0.995 day fails when the configured gate is stricter.
    lines = [ln for i in range(50) for ln in _chain(3600 + 60 * i)]
    result = _run(lake, [*lines, _orphan_click(7200)], error_below=0.998)
    consistency = _evaluations(result)[CONSISTENCY]
    assert consistency.severity == dg.AssetCheckSeverity.ERROR
    assert consistency.metadata["error_below"].value == 0.998
    assert PROBE not in _materialized(result)


def test_inconsistent_thresholds_fail_fast_naming_the_setting():
    with pytest.raises(ConfigError, match="error_below <= warn_below"):
        ContractsResource(error_below=0.999, warn_below=0.99).thresholds()
    with pytest.raises(ConfigError, match="clock_skew_ms"):
        ContractsResource(clock_skew_ms=-1).thresholds()
