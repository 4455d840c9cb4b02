"""Alerts: which failures become a webhook message, the message's JSON shape, and its delivery.

Three kinds of failure are sent, one message each:

* ``blocking_check``: a blocking check failed with ERROR severity (the gate stopped what depends
  on the asset). A gate that only warned stopped nothing and is not sent.
* ``slo_violation``: a failed check whose name starts with ``SLO_CHECK_PREFIX``, at any severity.
* ``run_failure``: a failed run, unless all it failed on is a blocking check of that run (that
  failure is already its ``blocking_check`` message), or Dagster will retry it (the retry's
  outcome is the signal).

Every message carries a ``dedup_key``, stable for one failure, so a receiver can drop the copy a
retry sends after a reply was lost.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pipelines.lib.lake.errors import ConfigError

BLOCKING_CHECK = "blocking_check"
SLO_VIOLATION = "slo_violation"
RUN_FAILURE = "run_failure"

# The SLO checks (pipelines/defs/slo/) are named slo_<metric>: a failed one is an SLO violation.
SLO_CHECK_PREFIX = "slo_"
ERROR = "ERROR"

WEBHOOK_URL_VARIABLE = "TELEMETRY_ALERT_WEBHOOK_URL"
DAGSTER_URL_VARIABLE = "TELEMETRY_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRY_PAUSE_S = 1.0
SUMMARY_MAX_CHARS = 300


@dataclass(frozen=True)
class Run:
    run_id: str
    job: str
    partition: str | None
    run_url: str


@dataclass(frozen=True)
class CheckOutcome:
    """One check evaluation as the event log recorded it."""

    asset: str
    check: str
    passed: bool
    severity: str
    blocking: bool
    partition: str | None
    occurred_at: datetime
    description: str | None = None
    numbers: Mapping[str, int | float | bool] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """Whether this evaluation stopped the run's downstream steps (and failed its step)."""
        return not self.passed and self.blocking and self.severity == ERROR


@dataclass(frozen=True)
class RunFailure:
    """Why a run failed: the steps that failed for a reason other than a blocking check (step key
    -> first line of its error), and the run's own failure message for when no step failed."""

    occurred_at: datetime
    message: str
    other_step_errors: Mapping[str, str] = field(default_factory=dict)
    will_retry: bool = False


@dataclass(frozen=True)
class What:
    job: str
    asset: str | None
    check: str | None
    summary: str


@dataclass(frozen=True)
class Alert:
    kind: str
    what: What
    partition: str | None
    run_id: str
    run_url: str
    severity: str
    occurred_at: str
    dedup_key: str

    def as_dict(self) -> dict:
        return asdict(self)

    def body(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True).encode()


def run_url(base: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/runs/{run_id}"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_MAX_CHARS else flat[: SUMMARY_MAX_CHARS - 3] + "..."


def _number(value: int | float | bool) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _check_summary(outcome: CheckOutcome) -> str:
    where = f" for {outcome.partition}" if outcome.partition else ""
    head = f"{outcome.check} on {outcome.asset} failed ({outcome.severity}){where}"
    numbers = ", ".join(f"{name}={_number(value)}" for name, value in outcome.numbers.items())
    detail = [text for text in (outcome.description, numbers) if text]
    return _one_line(": ".join([head, "; ".join(detail)]) if detail else head)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def check_alert(run: Run, outcome: CheckOutcome) -> Alert | None:
    """The message for a failed blocking check or SLO check; None for anything else."""
    slo = outcome.check.startswith(SLO_CHECK_PREFIX)
    if outcome.passed or not (slo or outcome.blocked):
        return None
    kind = SLO_VIOLATION if slo else BLOCKING_CHECK
    partition = outcome.partition or run.partition
    return Alert(
        kind=kind,
        what=What(run.job, outcome.asset, outcome.check, _check_summary(outcome)),
        partition=partition,
        run_id=run.run_id,
        run_url=run.run_url,
        severity=outcome.severity,
        occurred_at=_iso(outcome.occurred_at),
        # The partition last: the other parts cannot contain ':' (asset and check names are
        # identifiers), an hourly partition key can.
        dedup_key=f"{kind}:{run.run_id}:{outcome.asset}:{outcome.check}:{partition or '-'}",
    )


def run_failure_alert(run: Run, failure: RunFailure) -> Alert:
    steps = failure.other_step_errors
    summary = (
        "; ".join(f"step {step} failed: {error}" for step, error in steps.items())
        if steps
        else failure.message
    )
    return Alert(
        kind=RUN_FAILURE,
        what=What(run.job, None, None, _one_line(f"run of {run.job} failed: {summary}")),
        partition=run.partition,
        run_id=run.run_id,
        run_url=run.run_url,
        severity=ERROR,
        occurred_at=_iso(failure.occurred_at),
        dedup_key=f"{RUN_FAILURE}:{run.run_id}",
    )


def alerts_for_run(
    run: Run, outcomes: Sequence[CheckOutcome], failure: RunFailure | None = None
) -> list[Alert]:
    """Every message one finished run owes: its failed gates and SLOs, then its own failure
    unless that failure is only the gates already in the list (one message per failure)."""
    alerts = [a for a in (check_alert(run, o) for o in outcomes) if a is not None]
    if failure is None or failure.will_retry:
        return alerts
    explained = any(o.blocked for o in outcomes) and not failure.other_step_errors
    return alerts if explained else [*alerts, run_failure_alert(run, failure)]


def parse_webhook_url(value: str | None) -> str | None:
    """The configured webhook, or None when alerts are off; a value that is not an http(s) URL
    fails naming the variable."""
    if value is None or not value.strip():
        return None
    return _http_url(value.strip(), WEBHOOK_URL_VARIABLE, "https://hooks.example.com/<token>")


def parse_dagster_url(value: str | None) -> str:
    """The Dagster UI's base URL that run links start with."""
    if value is None or not value.strip():
        return DEFAULT_DAGSTER_URL
    return _http_url(value.strip(), DAGSTER_URL_VARIABLE, DEFAULT_DAGSTER_URL).rstrip("/")


def _http_url(value: str, variable: str, example: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Only the scheme is quoted back: a webhook URL's path is often its secret.
        raise ConfigError(
            f"{variable} is not an http:// or https:// URL (it starts with "
            f"{parts.scheme + '://' if parts.scheme else 'no scheme'}): set it like {example}"
        )
    return value


def redact(url: str) -> str:
    """The URL without path, query or credentials: safe for logs (webhook paths are secrets)."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/..."


class DeliveryError(RuntimeError):
    """The webhook did not take a message; the text names the message and the host, not the URL."""

    def __init__(self, alert: Alert, url: str, reason: str):
        super().__init__(f"alert {alert.dedup_key} not delivered to {redact(url)}: {reason}")
        self.alert = alert


def send(
    url: str,
    alert: Alert,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry_pause_s: float = DEFAULT_RETRY_PAUSE_S,
) -> None:
    """POST the message as JSON. A connection error or timeout is retried once (the receiver may
    then see it twice: ``dedup_key`` tells); an HTTP error status is not, since the receiver
    answered. Raises ``DeliveryError``."""
    request = urllib.request.Request(
        url,
        data=alert.body(),
        headers={"Content-Type": "application/json", "User-Agent": "telemetry-lake-alerts"},
        method="POST",
    )
    for attempt in (1, 2):
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
            return
        except urllib.error.HTTPError as error:
            raise DeliveryError(alert, url, f"HTTP {error.code} {error.reason}") from error
        except (OSError, http.client.HTTPException) as error:
            if attempt == 2:
                reason = getattr(error, "reason", None) or error
                raise DeliveryError(
                    alert, url, f"{type(error).__name__}: {reason} (after 2 attempts)"
                ) from error
            time.sleep(retry_pause_s)


class UndeliveredAlerts(RuntimeError):
    def __init__(self, errors: Sequence[DeliveryError]):
        super().__init__(
            f"{len(errors)} alert(s) not delivered, each logged with its message: "
            + "; ".join(str(e) for e in errors)
        )
        self.errors = list(errors)


def send_all(
    url: str,
    alerts: Sequence[Alert],
    info: Callable[[str], None],
    error: Callable[[str], None],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry_pause_s: float = DEFAULT_RETRY_PAUSE_S,
) -> None:
    """Send every message; one that fails is logged with its body (to replay it by hand) and the
    rest still go. Raises ``UndeliveredAlerts`` after the last one if any failed."""
    failed: list[DeliveryError] = []
    for alert in alerts:
        try:
            send(url, alert, timeout_s, retry_pause_s)
        except DeliveryError as exc:
            error(f"{exc}; message: {alert.body().decode()}")
            failed.append(exc)
        else:
            info(f"sent {alert.kind} alert {alert.dedup_key}")
    if failed:
        raise UndeliveredAlerts(failed)
