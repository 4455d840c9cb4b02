"""The alert sensors on a real instance: real runs fail a gate, fail outright, or succeed with a
failed SLO check; the sensors' ticks (cursor and all) send exactly one message per failure to a
recording webhook on 127.0.0.1, nothing again on the next tick, and survive a dead webhook."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from pipelines.defs import resources
from pipelines.defs.automation import alerts as alert_defs
from pipelines.defs.automation.alerts import (
    alerts_failed_runs,
    alerts_succeeded_runs,
    run_partition,
)
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.keys import LEDGER
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import AlertsResource, DuckDBSettings, LakeResource, PiiResource
from pipelines.defs.slo.checks import ANOMALY_CHECKS, SLO_CHECKS
from pipelines.lib.automation.alerts import SLO_CHECK_PREFIX
from pipelines.lib.ingest.landing import reading_partitions
from tests.automation.webhook import PATH, RecordingWebhook
from tests.conftest import DAY, event, free_port, line

UI = "http://dagster.test:3000"
KEY = DAY.isoformat()
PARTITIONS = daily_partitions()
SENSORS = (alerts_failed_runs, alerts_succeeded_runs)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def _resource(url: str | None) -> AlertsResource:
    return AlertsResource(webhook_url=url, dagster_url=UI, retry_pause_s=0)


class Sensors:
    """Both alert sensors, ticked as the daemon ticks them: each keeps its cursor between ticks."""

    def __init__(self, instance: dg.DagsterInstance, url: str | None):
        self.instance = instance
        self.url = url
        self.cursors: dict[str, str | None] = {s.name: None for s in SENSORS}
        self.tick()  # a run-status sensor's first tick only sets its cursor to "now"

    def tick(self) -> list:  # each sensor's SensorExecutionData
        results = []
        for sensor in SENSORS:
            context = dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors[sensor.name],
                resources={"alerts": _resource(self.url)},
            )
            results.append(sensor.evaluate_tick(context))
            self.cursors[sensor.name] = context.cursor
        return results


@dg.asset(partitions_def=PARTITIONS)
def measured() -> None:
    """Stands for traffic_daily."""


def _check(name: str, passed: bool, severity: dg.AssetCheckSeverity, blocking: bool = False):
    @dg.asset_check(asset=measured, name=name, blocking=blocking, partitions_def=PARTITIONS)
    def _the_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=passed,
            severity=severity,
            description=None if passed else f"{name} out of bounds",
            metadata={"observed_ms": 1250.0, "limit_ms": 800, "sample_keys": ["a", "b"]},
        )

    return _the_check


@dg.asset(partitions_def=PARTITIONS)
def crashes() -> None:
    raise ValueError("the model file is missing\nstack detail")


def _run(instance, *defs, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs), instance=instance, partition_key=KEY, raise_on_error=False, **kwargs
    )


def _fail_the_ledger_gate(lake, instance) -> dg.ExecuteInProcessResult:
    """The real ledger_balances gate, on the last of the four days that read a landing file which
    grew after the first three had read it."""
    name = lake.land(DAY, "a.jsonl", [line(event("click"))])
    *first, last = reading_partitions(DAY)
    for day in first:
        lake.ingest(day)
    (lake.root / name).write_bytes((lake.root / name).read_bytes() + line(event("click")) + b"\n")
    return dg.materialize(
        [build_ingest_assets(PARTITIONS), build_ledger_check(PARTITIONS)],
        resources={
            "lake": LakeResource(root=str(lake.root)),
            "pii": PiiResource(),
            "duckdb": DuckDBSettings(),
        },
        partition_key=last.isoformat(),
        instance=instance,
        raise_on_error=False,
    )


def test_one_message_per_failure_and_none_again_on_the_next_tick(lake, instance):
    with RecordingWebhook() as hook:
        sensors = Sensors(instance, hook.url)
        gate_run = _fail_the_ledger_gate(lake, instance)
        crash_run = _run(instance, crashes)
        slo_run = _run(
            instance,
            measured,
            _check("slo_latency_p95_ms", False, dg.AssetCheckSeverity.WARN),
            _check("anomaly_ctr", False, dg.AssetCheckSeverity.WARN),
            _check("slo_error_rate", True, dg.AssetCheckSeverity.WARN),
        )
        clean_run = _run(instance, measured)
        assert (gate_run.success, crash_run.success, slo_run.success, clean_run.success) == (
            False,
            False,
            True,
            True,
        )
        sensors.tick()
        received = sorted(hook.bodies, key=lambda body: body["kind"])
        assert sensors.tick() and len(hook.bodies) == 3  # the next tick sends nothing

    gate, crash, slo = received
    assert gate["kind"] == "blocking_check"
    assert gate["what"]["asset"] == LEDGER and gate["what"]["check"] == LEDGER_BALANCES
    gate_key = reading_partitions(DAY)[-1].isoformat()
    assert gate["what"]["summary"] == (
        f"{LEDGER_BALANCES} on {LEDGER} failed (ERROR) for {gate_key}: file_total_mismatches=1, "
        "files_awaiting_partitions=0, files_with_all_partitions=1, landing_files=1, "
        "lines_taken=0, output_mismatches=0, unbalanced_files=0"
    )
    assert (gate["partition"], gate["severity"]) == (gate_key, "ERROR")
    assert gate["run_id"] == gate_run.run_id
    assert gate["run_url"] == f"{UI}/runs/{gate_run.run_id}"
    assert gate["dedup_key"] == (
        f"blocking_check:{gate_run.run_id}:{LEDGER}:{LEDGER_BALANCES}:{gate_key}"
    )
    # The gate's run failed too, on that gate only: no second message for it.
    assert crash["kind"] == "run_failure" and crash["run_id"] == crash_run.run_id
    assert crash["what"]["summary"] == (
        "run of __ephemeral_asset_job__ failed: step crashes failed: "
        "ValueError: the model file is missing"
    )
    assert (crash["partition"], crash["run_url"]) == (KEY, f"{UI}/runs/{crash_run.run_id}")
    assert slo["kind"] == "slo_violation" and slo["run_id"] == slo_run.run_id
    assert (slo["what"]["check"], slo["severity"]) == ("slo_latency_p95_ms", "WARN")
    assert slo["what"]["summary"] == (
        f"slo_latency_p95_ms on measured failed (WARN) for {KEY}: slo_latency_p95_ms out of "
        "bounds; limit_ms=800, observed_ms=1250"
    )


def test_a_run_that_fails_on_a_gate_and_elsewhere_sends_both(instance):
    gate = _check("completeness", False, dg.AssetCheckSeverity.ERROR, blocking=True)
    with RecordingWebhook() as hook:
        sensors = Sensors(instance, hook.url)
        run = _run(instance, measured, gate, crashes)
        sensors.tick()
    assert sorted((b["kind"], b["run_id"]) for b in hook.bodies) == [
        ("blocking_check", run.run_id),
        ("run_failure", run.run_id),
    ]
    [failure] = [b for b in hook.bodies if b["kind"] == "run_failure"]
    assert "step crashes failed" in failure["what"]["summary"]
    assert "measured_completeness" not in failure["what"]["summary"]


def test_an_unreachable_webhook_fails_the_tick_visibly_and_the_sensor_goes_on(instance):
    sensors = Sensors(instance, f"http://127.0.0.1:{free_port()}{PATH}")
    lost = _run(instance, crashes)
    failed, _ = sensors.tick()  # returns: the sensor does not crash
    [reaction] = failed.dagster_run_reactions
    assert reaction.dagster_run.run_id == lost.run_id
    assert f"alert run_failure:{lost.run_id} not delivered to http://127.0.0.1:" in (
        reaction.error.to_string()
    )
    assert PATH not in reaction.error.to_string()
    with RecordingWebhook() as hook:
        sensors.url = hook.url
        later = _run(instance, crashes)
        sensors.tick()
    # Dagster moved the cursor past the undelivered run (its message is in the tick's log).
    assert [b["run_id"] for b in hook.bodies] == [later.run_id]


def test_without_a_webhook_the_sensors_skip_saying_what_to_set(instance):
    sensors = Sensors(instance, None)
    _run(instance, crashes)
    _run(instance, measured, _check("slo_latency_p95_ms", False, dg.AssetCheckSeverity.WARN))
    failed, succeeded = sensors.tick()
    for result in (failed, succeeded):
        assert "TELEMETRY_ALERT_WEBHOOK_URL is not set, so alerts are off" in result.skip_message


def test_a_webhook_url_that_is_not_http_fails_the_tick_naming_the_variable(instance):
    sensors = Sensors(instance, None)
    sensors.url = "hooks.example.com/secret-token"
    run = _run(instance, crashes)
    with pytest.raises(dg.DagsterResourceFunctionError) as error:
        sensors.tick()
    assert "TELEMETRY_ALERT_WEBHOOK_URL is not an http" in str(error.value.__cause__)
    assert "secret-token" not in str(error.value.__cause__)
    # The failed tick kept its cursor: once the variable is fixed, the run is alerted.
    with RecordingWebhook() as hook:
        sensors.url = hook.url
        sensors.tick()
    assert [b["run_id"] for b in hook.bodies] == [run.run_id]


def test_a_run_dagster_will_retry_is_left_to_its_retry():
    retries = {"run_retries": {"enabled": True, "max_retries": 1}}
    with dg.instance_for_test(overrides=retries) as instance, RecordingWebhook() as hook:
        sensors = Sensors(instance, hook.url)
        run = _run(instance, crashes)
        assert instance.get_run_by_id(run.run_id).tags["dagster/will_retry"] == "true"
        sensors.tick()
    assert hook.bodies == []


def test_the_resource_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TELEMETRY_ALERT_WEBHOOK_URL", "https://hooks.example.com/t")
    monkeypatch.setenv("TELEMETRY_DAGSTER_URL", "https://dagster.example")
    defs = alert_defs.defs()
    with dg.build_resources({"alerts": resources.defs().resources["alerts"]}) as built:
        assert built.alerts.webhook() == "https://hooks.example.com/t"
        assert built.alerts.run_url("r") == "https://dagster.example/runs/r"
    assert {s.name for s in defs.sensors} == {"alerts_failed_runs", "alerts_succeeded_runs"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_the_slo_checks_are_the_ones_named_as_slo_violations():
    assert all(name.startswith(SLO_CHECK_PREFIX) for name in SLO_CHECKS.values())
    assert not any(name.startswith(SLO_CHECK_PREFIX) for name in ANOMALY_CHECKS.values())


def test_a_run_over_a_range_of_partitions_names_the_range():
    assert run_partition({"dagster/partition": KEY}) == KEY
    range_tags = {
        "dagster/asset_partition_range_start": "2025-06-01",
        "dagster/asset_partition_range_end": "2025-06-14",
    }
    assert run_partition(range_tags) == "2025-06-01...2025-06-14"
    assert run_partition({}) is None
