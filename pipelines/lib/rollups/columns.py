"""What every rollup column means, in one place: docs/contracts/rollups.md is generated from it,
and a test fails when a rollup writes a column missing here (or this lists one it no longer
writes)."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

from pipelines.lib.lake.paths import docs_dir

if TYPE_CHECKING:
    from pipelines.lib.rollups.run import Model

# The committed JSON twin of docs/contracts/rollups.md, relative to docs/: the columns the rollup
# assets load as their Dagster column schema.
ROLLUP_COLUMNS_PAGE = "contracts/rollups.columns.json"

_DIMENSIONS = {
    "experiment_id": "The request's experiment (null: all traffic, a request in no experiment, or "
    "no request found).",
    "bucket": "The request's bucket within the experiment.",
    "surface": "The request's surface (home, search, ...).",
    "device_type": "The request's device type.",
    "is_all_traffic": "True on the one row that counts every event of the period (its "
    "dimensions are null and mean 'all'); false on the per-dimension rows, including the row "
    "of events whose request was not found or that carry none (null dimensions, "
    "is_unattributed).",
}
UNATTRIBUTED = (
    "True on the one row of the events whose request was not found or that carry none (clicks "
    "and impressions of an unknown request_id, errors without one): their dimensions are null "
    "and mean 'not known'. It has no requests and usually clicks without impressions, so its "
    "ratios are null. Leave it out (`where not is_all_traffic and not is_unattributed`) to sum "
    "the rows of known dimensions; its events still count in the all-traffic row."
)


def _null_without(denominator: str, example: str = "") -> str:
    """Why a ratio is null: its denominator is 0 on that row. Never inf or NaN."""
    return f"null where {denominator} is 0{example}, never inf or NaN."


_NO_REQUESTS = " (always on the unattributed row, which has no requests)"

TRAFFIC = {
    "period_start": "First day of the period (UTC).",
    "period_end": "Last day of the period (UTC), inclusive.",
    **_DIMENSIONS,
    "is_unattributed": UNATTRIBUTED,
    "requests": "Request events.",
    "rankings": "Ranking events.",
    "impressions": "Impression events.",
    "clicks": "Click events of every engagement type.",
    "clicks_click": "Clicks with engagement_type click.",
    "clicks_add_to_cart": "Clicks with engagement_type add_to_cart.",
    "clicks_save": "Clicks with engagement_type save.",
    "clicks_share": "Clicks with engagement_type share.",
    "clicks_purchase": "Clicks with engagement_type purchase.",
    "errors": "Error events (attributed through their request_id; one without a request_id "
    "counts in the row of unknown dimensions).",
    "distinct_users": "Distinct hashed user_id among the requests (across a PII key rotation, "
    "a user_id linked to its previous key's hash through user_id_prev counts once).",
    "coverage_mean": "Mean of ranking.coverage.",
    "distinct_items_ranked": "Distinct canonical_id among the rankings' items.",
    "distinct_items_impressed": "Distinct canonical_id among the impressions.",
    "distinct_sessions": "Distinct hashed session_id among the impressions.",
    "latency_p50_ms": "Median of ranking.latency_ms (linear interpolation).",
    "latency_p95_ms": "95th percentile of ranking.latency_ms (linear interpolation).",
    "latency_p99_ms": "99th percentile of ranking.latency_ms (linear interpolation).",
    "latency_mean_ms": "Mean of ranking.latency_ms.",
    "dwell_mean_ms": "Mean of click.dwell_ms where present.",
    "dwell_median_ms": "Median of click.dwell_ms where present (linear interpolation).",
    "ctr": "CTR proxy: clicks / impressions; "
    + _null_without("impressions", " (e.g. the unattributed row of clicks without impressions)"),
    "item_coverage": "distinct_items_impressed / distinct_items_ranked; "
    + _null_without("distinct_items_ranked"),
    "error_rate": "errors / requests; " + _null_without("requests", _NO_REQUESTS),
    "impressions_per_request": "impressions / requests (engagement depth); "
    + _null_without("requests", _NO_REQUESTS),
    "clicks_per_session": "clicks / distinct_sessions (engagement depth); "
    + _null_without("distinct_sessions"),
}
# Weekly and monthly traffic add, for every metric, its change against the previous period.
CHANGE_SUFFIX = "_change"
CHANGE = (
    "(this period - previous period) / previous period, matched on the dimensions; null "
    "without a previous period's row or where it was 0."
)

HOURLY = {
    "hour_start": "Start of the UTC hour.",
    "requests": "Request events in the hour.",
    "impressions": "Impression events in the hour.",
    "clicks": "Click events in the hour.",
    "errors": "Error events in the hour.",
    "distinct_users": "Distinct hashed user_id among all the hour's events (the users the row "
    "covers; the viewer tier withholds rows below its k).",
    "latency_p95_ms": "95th percentile of ranking.latency_ms in the hour (linear interpolation).",
}

ERRORS = {
    "component": "The error's component.",
    "severity": "info, warning, error or critical.",
    "error_code": "The error code (upper snake case).",
    "errors": "Error events with this component, severity and code.",
    "distinct_requests": "Distinct request_id they carry (requests affected).",
    "distinct_users": "Distinct hashed user_id they carry (users affected; an error without one "
    "adds none). The viewer tier withholds rows below its k.",
    "first_seen": "Earliest timestamp (UTC).",
    "last_seen": "Latest timestamp (UTC).",
    "rank_by_count": "1 for the most frequent code of the day (ties share a rank): the top codes.",
}

EXPERIMENTS = {
    "experiment_id": "The experiment, from the request.",
    "bucket": "The bucket, from the request.",
    "requests_assigned": "Requests of the bucket in the week (a retried request_id once).",
    "users_assigned": "Distinct hashed users among them: the unit of randomisation, which the "
    "SRM test counts.",
    "requests": "Exposed requests m: those with at least one impression.",
    "impressions": "N = sum of n_i, the impressions of the exposed requests.",
    "clicks": "C = sum of c_i, their clicks.",
    "impressions_sq": "sum of n_i squared (sufficient statistic of the delta method).",
    "clicks_sq": "sum of c_i squared.",
    "clicks_impressions": "sum of c_i * n_i.",
    "latency_p95_ms": "Guardrail: 95th percentile of the bucket's ranking.latency_ms.",
    "error_rate": "Guardrail: the bucket's error events / requests_assigned.",
    "ctr": "C / N.",
    "ctr_se": "Standard error of ctr by the delta method over requests (clicks are clustered "
    "by request, so the binomial error would be too small).",
    "ctr_ci_low": "Lower bound of the 95% normal interval of ctr.",
    "ctr_ci_high": "Upper bound of the 95% normal interval of ctr.",
    "lift_abs": "ctr - ctr of the control bucket (null on control).",
    "lift_abs_ci_low": "Lower bound of its 95% interval (variances of the two buckets added).",
    "lift_abs_ci_high": "Upper bound of its 95% interval.",
    "lift_rel": "ctr / ctr of control - 1.",
    "lift_rel_ci_low": "Lower bound of its 95% interval (delta method).",
    "lift_rel_ci_high": "Upper bound of its 95% interval.",
    "p_value": "Two-sided z-test of lift_abs = 0.",
    "expected_share": "The bucket's configured share of users (default: equal).",
    "srm_chi2": "Pearson chi-square of users_assigned against the expected shares.",
    "srm_p_value": "Its p-value (k - 1 degrees of freedom); small values flag a sample-ratio "
    "mismatch.",
}

COMPLIANCE = {
    "section": "stored_rows, quarantined, duplicates or contract_violations (erasure and "
    "retention actions are not recorded yet: they join with the privacy operations).",
    "item": "event_type/PII class, quarantine reason, exact_duplicate, or family/rule.",
    "item_count": "Rows stored, lines quarantined, lines dropped, or violations.",
    "detail": "For stored_rows: the fields of that PII class.",
}

PARTS = {
    **{k: _DIMENSIONS[k] for k in ("experiment_id", "bucket", "surface", "device_type")},
    "part_name": "users, items_ranked, items_impressed or sessions (a distinct member), "
    "user_links (after a PII key rotation, within the overlap) or latency_ms, coverage or "
    "dwell_ms (one event's value).",
    "member": "The distinct member: a hashed user_id, a canonical_id or a hashed session_id; "
    "for user_links `user_id_prev:user_id`, so a week or month counts a user once across the "
    "rotation.",
    "measure": "The event's value (ranking.latency_ms, ranking.coverage, click.dwell_ms).",
}


def definition(model: Model, column: str) -> str | None:
    """What ``column`` of ``model`` means: its own text, or for a change column (``_change``) the
    shared meaning of a change."""
    if column in model.columns:
        return model.columns[column]
    base = column.removesuffix(CHANGE_SUFFIX)
    if model.finish is not None and base != column and base in model.columns:
        return CHANGE
    return None


@functools.cache
def rollup_columns() -> dict[str, list[dict[str, str]]]:
    """Rollup name -> its columns (name, type, description), as the committed JSON twin of the
    page has them (``python -m pipelines.docs --check`` keeps it current)."""
    path = docs_dir() / ROLLUP_COLUMNS_PAGE
    return json.loads(path.read_text(encoding="utf-8"))["rollups"]
