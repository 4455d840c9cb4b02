"""Which failures become alerts, the message's shape, and delivery to a real HTTP server on
127.0.0.1 (a retry on a dropped connection, none on an HTTP error)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipelines.lib.automation import alerts
from pipelines.lib.automation.alerts import (
    Alert,
    CheckOutcome,
    DeliveryError,
    Run,
    RunFailure,
    UndeliveredAlerts,
    alerts_for_run,
)
from pipelines.lib.lake.errors import ConfigError
from tests.automation.webhook import DROP, HANG, PATH, RecordingWebhook
from tests.conftest import free_port

AT = datetime(2025, 6, 3, 2, 15, tzinfo=UTC)
RUN = Run("r-1", "daily_lake", "2025-06-02", "http://dagster.example/runs/r-1")


def outcome(check: str, **fields) -> CheckOutcome:
    values = {
        "asset": "contracts",
        "check": check,
        "passed": False,
        "severity": "ERROR",
        "blocking": True,
        "partition": "2025-06-02",
        "occurred_at": AT,
    }
    return CheckOutcome(**{**values, **fields})


def failure(**fields) -> RunFailure:
    return RunFailure(**{"occurred_at": AT, "message": "Steps failed: ['x'].", **fields})


def test_a_failed_gate_is_one_blocking_check_message_with_the_shape_receivers_read():
    gate = outcome("consistency", numbers={"rate": 100 / 102, "checked": 102, "failed": 2})
    [alert] = alerts_for_run(RUN, [gate])
    assert json.loads(alert.body()) == {
        "kind": "blocking_check",
        "what": {
            "job": "daily_lake",
            "asset": "contracts",
            "check": "consistency",
            "summary": "consistency on contracts failed (ERROR) for 2025-06-02: "
            "rate=0.980392, checked=102, failed=2",
        },
        "partition": "2025-06-02",
        "run_id": "r-1",
        "run_url": "http://dagster.example/runs/r-1",
        "severity": "ERROR",
        "occurred_at": "2025-06-03T02:15:00+00:00",
        "dedup_key": "blocking_check:r-1:contracts:consistency:2025-06-02",
    }


def test_only_gates_that_blocked_and_slo_checks_are_sent():
    outcomes = [
        outcome("validity", passed=True),
        outcome("timeliness", severity="WARN"),  # a gate that only warned stopped nothing
        outcome("freshness_check", blocking=False),  # watched by its own sensor
        outcome("anomaly_ctr", asset="traffic_daily", severity="WARN", blocking=False),
        outcome(
            "slo_latency_p95_ms",
            asset="traffic_daily",
            severity="WARN",
            blocking=False,
            description="p95 1250 ms above 800 ms",
        ),
        outcome("slo_error_rate", asset="traffic_daily", passed=True, blocking=False),
    ]
    [slo] = alerts_for_run(RUN, outcomes)
    assert (slo.kind, slo.severity) == ("slo_violation", "WARN")
    assert slo.what.summary == (
        "slo_latency_p95_ms on traffic_daily failed (WARN) for 2025-06-02: p95 1250 ms above 800 ms"
    )


def test_a_run_that_failed_only_on_its_gate_sends_the_gate_alone():
    gate = outcome("ledger_balances", asset="ledger")
    assert [a.kind for a in alerts_for_run(RUN, [gate], failure())] == ["blocking_check"]


def test_a_run_that_also_failed_elsewhere_sends_both_failures():
    gate = outcome("ledger_balances", asset="ledger")
    crash = failure(other_step_errors={"traffic_daily": "ValueError: bad model"})
    gate_alert, run_alert = alerts_for_run(RUN, [gate], crash)
    assert gate_alert.kind == "blocking_check"
    assert run_alert.kind == "run_failure"
    assert run_alert.what.summary == (
        "run of daily_lake failed: step traffic_daily failed: ValueError: bad model"
    )
    assert (run_alert.dedup_key, run_alert.severity) == ("run_failure:r-1", "ERROR")


def test_a_run_failure_without_a_failed_step_quotes_the_run_and_a_retried_run_waits():
    [alert] = alerts_for_run(RUN, [], failure(message="Run worker crashed\nexit code 137"))
    assert alert.what.summary == "run of daily_lake failed: Run worker crashed exit code 137"
    assert (alert.what.asset, alert.what.check) == (None, None)
    assert alerts_for_run(RUN, [], failure(will_retry=True)) == []


def test_a_check_without_a_partition_takes_the_runs_and_long_summaries_are_cut():
    check = outcome("consistency", partition=None, description="x" * 500)
    [alert] = alerts_for_run(RUN, [check])
    assert alert.partition == "2025-06-02"
    assert len(alert.what.summary) == alerts.SUMMARY_MAX_CHARS
    assert alert.what.summary.endswith("...")
    unpartitioned = Run("r-2", "retention", None, "u")
    [alert] = alerts_for_run(unpartitioned, [outcome("consistency", partition=None)])
    assert alert.partition is None
    assert alert.dedup_key == "blocking_check:r-2:contracts:consistency:-"


def test_urls_are_validated_naming_the_variable_and_never_echo_a_path():
    assert alerts.parse_webhook_url(None) is None
    assert alerts.parse_webhook_url("  ") is None
    assert alerts.parse_webhook_url("https://hooks.example.com/t") == "https://hooks.example.com/t"
    with pytest.raises(ConfigError, match="TELEMETRY_ALERT_WEBHOOK_URL is not an http") as error:
        alerts.parse_webhook_url("hooks.example.com/secret-token")
    assert "secret-token" not in str(error.value)
    assert alerts.parse_dagster_url(None) == "http://127.0.0.1:3000"
    assert alerts.parse_dagster_url("https://dagster.example/") == "https://dagster.example"
    with pytest.raises(ConfigError, match="TELEMETRY_DAGSTER_URL"):
        alerts.parse_dagster_url("ftp://dagster.example")
    assert alerts.run_url("https://dagster.example/", "r-1") == "https://dagster.example/runs/r-1"
    assert alerts.redact("https://user:pw@hooks.example.com:8443/t?k=v") == (
        "https://hooks.example.com:8443/..."
    )


def _alert(key: str = "k") -> Alert:
    [alert] = alerts_for_run(Run(key, "job", None, "u"), [outcome("validity")])
    return alert


def test_send_posts_the_json_body():
    with RecordingWebhook() as hook:
        alerts.send(hook.url, _alert())
    assert hook.bodies == [_alert().as_dict()]


def test_a_dropped_connection_is_retried_once():
    with RecordingWebhook([DROP]) as hook:
        alerts.send(hook.url, _alert(), retry_pause_s=0)
    assert hook.requests == 2
    assert hook.bodies == [_alert().as_dict()]


def test_two_connection_errors_or_timeouts_fail_without_the_url_path():
    with RecordingWebhook([DROP, DROP]) as hook, pytest.raises(DeliveryError) as error:
        alerts.send(hook.url, _alert(), retry_pause_s=0)
    assert hook.requests == 2 and hook.bodies == []
    assert "after 2 attempts" in str(error.value)
    assert PATH not in str(error.value) and "127.0.0.1" in str(error.value)
    with RecordingWebhook([HANG, HANG]) as hook, pytest.raises(DeliveryError, match="timed out"):
        alerts.send(hook.url, _alert(), timeout_s=0.2, retry_pause_s=0)
    assert hook.requests == 2


def test_an_http_error_is_not_retried():
    with RecordingWebhook([500]) as hook, pytest.raises(DeliveryError, match="HTTP 500"):
        alerts.send(hook.url, _alert(), retry_pause_s=0)
    assert hook.requests == 1


def test_send_all_tries_every_message_and_names_the_undelivered():
    logged: list[str] = []
    with RecordingWebhook([503]) as hook, pytest.raises(UndeliveredAlerts) as error:
        alerts.send_all(hook.url, [_alert("a"), _alert("b")], logged.append, logged.append)
    assert [body["run_id"] for body in hook.bodies] == ["b"]
    assert [e.alert.run_id for e in error.value.errors] == ["a"]
    assert logged[0].startswith(f"alert {_alert('a').dedup_key} not delivered")
    assert '"run_id": "a"' in logged[0]  # the body, to replay by hand
    assert logged[1] == f"sent blocking_check alert {_alert('b').dedup_key}"


def test_an_unreachable_webhook_is_a_delivery_error():
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(DeliveryError, match=r"ConnectionRefusedError|Connection refused"):
        alerts.send(url, _alert(), retry_pause_s=0)
