"""The cross-event rules, declared once: name, family, the events each one judges and what it
asserts. ``sql/contracts/consistency.sql`` emits exactly these names, ``docs/contracts/joins.md``
is generated from them, and the single-table rules come from the schemas (``expectations.py``)."""

from __future__ import annotations

from dataclasses import dataclass

COMPLETENESS = "completeness"
CONSISTENCY = "consistency"
VALIDITY = "validity"
TIMELINESS = "timeliness"
FAMILIES = (COMPLETENESS, CONSISTENCY, VALIDITY, TIMELINESS)

# The events a request's chain is made of; errors stand alone.
CHAIN_TYPES = ("request", "ranking", "impression", "click")


@dataclass(frozen=True)
class Rule:
    name: str
    family: str
    event_types: tuple[str, ...]  # the events judged: a violation row names one of them
    text: str
    # A violation may be a partner not found, which D+1 can still hold until it is ingested.
    partner_may_be_next_day: bool = False


CONSISTENCY_RULES = (
    Rule(
        "request_has_one_ranking",
        CONSISTENCY,
        ("request",),
        "request -> ranking is 1:1: every request has exactly one ranking.",
        partner_may_be_next_day=True,
    ),
    Rule(
        "ranking_has_one_request",
        CONSISTENCY,
        ("ranking",),
        "request -> ranking is 1:1: every ranking has exactly one request.",
        partner_may_be_next_day=True,
    ),
    Rule(
        "impression_has_ranking",
        CONSISTENCY,
        ("impression",),
        "ranking -> impression is 1:many: every impression's `request_id` has a ranking.",
        partner_may_be_next_day=True,
    ),
    Rule(
        "impression_matches_ranked_item",
        CONSISTENCY,
        ("impression",),
        "Position consistency: the impression's (`canonical_id`, `position`) is an item of its "
        "ranking at that position (judged only where the ranking exists).",
    ),
    Rule(
        "click_has_impression",
        CONSISTENCY,
        ("click",),
        "impression -> click is 0:1: every click matches an impression with the same "
        "`request_id` and `canonical_id`.",
        partner_may_be_next_day=True,
    ),
    Rule(
        "click_is_unique",
        CONSISTENCY,
        ("click",),
        "At most one click per (`request_id`, `canonical_id`, `engagement_type`): every click "
        "after the first (by `timestamp_ms`, then `event_id`) is a violation.",
    ),
    Rule(
        "user_agrees_with_request",
        CONSISTENCY,
        ("ranking", "impression", "click"),
        "A request's events carry the request's hashed `user_id` (around a PII key rotation, "
        "or one side's `user_id_prev` equals the other's `user_id`).",
    ),
    Rule(
        "experiment_agrees_with_request",
        CONSISTENCY,
        ("ranking",),
        "Where the request names an `experiment_id`, its ranking carries the same "
        "`experiment_id` and `bucket`.",
    ),
    Rule(
        "time_order",
        CONSISTENCY,
        ("ranking", "impression", "click"),
        "request <= ranking <= impression <= click by `timestamp_ms`, each compared with its "
        "partner (the first request, the first ranking, the first impression of the item) and "
        "allowed `clock_skew_ms` of skew.",
    ),
    Rule(
        "items_within_k",
        CONSISTENCY,
        ("ranking",),
        "`ranking.items` holds no more items than the request's `k`.",
    ),
)

LANDED_IN_WINDOW = Rule(
    "landed_in_window",
    TIMELINESS,
    ("request", "ranking", "impression", "click", "error"),
    "The event landed within the ingest window (by T+2); later lines were quarantined as "
    "`late_arrival` and count against their event date.",
)

RULES = {rule.name: rule for rule in (*CONSISTENCY_RULES, LANDED_IN_WINDOW)}
