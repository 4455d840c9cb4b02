"""Freshness checks on every daily asset: yesterday's partition by 06:00 UTC, and a failed check
names the missing partition. Run for real against an instance that has some partitions, with
Dagster's clock frozen either side of a deadline."""

from datetime import UTC, datetime

import dagster as dg
import pytest
import time_machine

from pipelines.defs.keys import FRESHNESS_CHECK, daily_asset_keys
from tests.conftest import load_defs

# Written out by hand from the rule (the latest 06:00 UTC deadline that has passed expects the
# day before it), not computed: a minute before the deadline of 2025-06-10 the check still
# expects 2025-06-08; at the deadline, 2025-06-09.
BEFORE_DEADLINE = (datetime(2025, 6, 10, 5, 59, tzinfo=UTC), "2025-06-08")
AT_DEADLINE = (datetime(2025, 6, 10, 6, 0, tzinfo=UTC), "2025-06-09")


@pytest.fixture
def defs(monkeypatch, tmp_path) -> dg.Definitions:
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path / "lake"))
    loaded = load_defs()
    keys = [dg.AssetCheckKey(k, FRESHNESS_CHECK) for k in daily_asset_keys()]
    job = dg.define_asset_job("freshness_only", selection=dg.AssetSelection.checks(*keys))
    return dg.Definitions.merge(loaded, dg.Definitions(jobs=[job]))


def test_every_daily_asset_has_a_freshness_check(defs):
    graph = defs.resolve_asset_graph()
    fresh = {
        k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == FRESHNESS_CHECK
    }
    assert fresh == {
        "request", "ranking", "impression", "click", "error", "quarantine", "ledger",
        "contracts", "traffic_daily", "traffic_parts", "traffic_hourly", "errors_daily",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("now", "expected"), [BEFORE_DEADLINE, AT_DEADLINE], ids=["before_06_00", "at_06_00"]
)
def test_a_missing_partition_fails_the_check_by_name_and_a_present_one_passes(defs, now, expected):
    with dg.instance_for_test() as instance, time_machine.travel(now, tick=False):
        instance.report_runless_asset_event(dg.AssetMaterialization("request", partition=expected))
        # An older partition of another asset does not make it fresh.
        instance.report_runless_asset_event(
            dg.AssetMaterialization("click", partition="2025-06-05")
        )
        result = defs.resolve_job_def("freshness_only").execute_in_process(
            instance=instance, raise_on_error=False
        )
        evaluations = {
            e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
        }
    assert len(evaluations) == 12
    assert evaluations["request"].passed
    click = evaluations["click"]
    assert not click.passed
    assert click.severity == dg.AssetCheckSeverity.ERROR
    assert click.description == (
        f"Asset is overdue. We expected partition {expected} to have arrived, and it has not."
    )
    assert f"partition {expected}" in evaluations["traffic_daily"].description
