"""The cross-event rules on real ingested days: each rule flags exactly its own offenders (rule,
event_type, event_id, request_id, detail) and nothing else, the rates and quality rows count them,
a chain across midnight is judged with its neighbour day, late lines count against timeliness.

Every scenario is landed, ingested by the real ingest and judged by ``run_contracts``; assertions
read the written ``contracts/`` and ``quality/`` files back. The broken day puts one broken chain
per case beside clean chains: each case's chain must produce exactly its expected rows, so one
run shows every rule's offenders without a day per rule."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.lib.contracts.rules import (
    COMPLETENESS,
    CONSISTENCY,
    CONSISTENCY_RULES,
    FAMILIES,
    TIMELINESS,
    VALIDITY,
)
from pipelines.lib.contracts.run import ContractsResult, run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.lake.paths import contracts_file, quality_file
from tests.conftest import DAY, LakeHelper, event, line, ts

NEXT = DAY + timedelta(days=1)
DEFAULT = Thresholds()
SKEW = DEFAULT.clock_skew_ms
RULE_NAMES = [rule.name for rule in CONSISTENCY_RULES]
RULE_TYPES = {rule.name: rule.event_types for rule in CONSISTENCY_RULES}


def at(day: date, hours: int = 0, minutes: int = 0, seconds: int = 0, ms: int = 0) -> int:
    """Epoch ms of a wall-clock time (UTC) on `day`, exact to the millisecond."""
    return ts(day, 0) + ((hours * 60 + minutes) * 60 + seconds) * 1000 + ms


def event_date(doc: dict) -> date:
    return datetime.fromtimestamp(doc["timestamp_ms"] / 1000, UTC).date()


def item(position: int) -> str:
    return f"item-{position:05d}"


# --- the builder: one consistent request chain ---------------------------------------------------


@dataclass
class Chain:
    request_id: str
    user_id: str
    events: list[dict] = field(default_factory=list)

    def of(self, event_type: str) -> list[dict]:
        return [e for e in self.events if e["event_type"] == event_type]

    def one(self, event_type: str) -> dict:
        [doc] = self.of(event_type)
        return doc

    def add(self, event_type: str, timestamp_ms: int, **fields: Any) -> dict:
        """Another event of this chain (same request_id and user), valid per its schema."""
        base: dict[str, Any] = {"request_id": self.request_id, "user_id": self.user_id}
        if event_type in ("request", "impression", "click"):
            base["session_id"] = f"s-{self.user_id}"
        doc = event(event_type, timestamp_ms=timestamp_ms, **{**base, **fields})
        self.events.append(doc)
        return doc

    def drop(self, *event_types: str) -> None:
        self.events = [e for e in self.events if e["event_type"] not in event_types]


def build_chain(
    start_ms: int,
    *,
    user: str = "u-000001",
    n_items: int = 3,
    shown: tuple[int, ...] = (1, 2),
    clicked: tuple[int, ...] = (1,),
    k: int = 20,
    experiment: tuple[str, str] | None = ("exp-ranker-v2", "control"),
    ranking_after_ms: int = 100,
    impression_after_ms: int = 300,
    click_after_ms: int = 2000,
) -> Chain:
    """request at `start_ms`; its ranking (items at positions 1..n_items); an impression of each
    position in `shown`; a click on each position in `clicked`. Times are offsets from the
    request; `experiment=None` makes a request without experiment_id/bucket (its ranking still
    carries one: the schema requires it there)."""
    chain = Chain(str(uuid.uuid4()), user)
    request = chain.add("request", start_ms, k=k)
    del request["experiment_id"], request["bucket"]
    if experiment is not None:
        request.update(experiment_id=experiment[0], bucket=experiment[1])
    arm = experiment or ("exp-ranker-v2", "control")
    chain.add(
        "ranking",
        start_ms + ranking_after_ms,
        items=[
            {"canonical_id": item(p), "position": p, "score": round(1 - p / 100, 2)}
            for p in range(1, n_items + 1)
        ],
        experiment_id=arm[0],
        bucket=arm[1],
    )
    for i, position in enumerate(shown):
        chain.add(
            "impression",
            start_ms + impression_after_ms + 10 * i,
            canonical_id=item(position),
            position=position,
        )
    for i, position in enumerate(clicked):
        chain.add(
            "click",
            start_ms + click_after_ms + 10 * i,
            canonical_id=item(position),
            engagement_type="click",
        )
    return chain


def land_on_event_dates(lake: LakeHelper, docs: list[dict], name: str = "events.jsonl") -> None:
    """Each event lands on its own event date (the punctual case)."""
    by_dt: dict[date, list[bytes]] = {}
    for doc in docs:
        by_dt.setdefault(event_date(doc), []).append(line(doc))
    for dt, lines in by_dt.items():
        lake.land(dt, name, lines)


def error_event(timestamp_ms: int, request_id: str) -> dict:
    return event("error", timestamp_ms=timestamp_ms, request_id=request_id, user_id="u-000001")


# --- running and reading back ---------------------------------------------------------------------


def flag(rule: str, doc: dict, detail: str) -> tuple:
    """A violation row as the tests compare it."""
    return (rule, doc["event_type"], doc["event_id"], doc.get("request_id"), detail)


@dataclass
class Outcome:
    result: ContractsResult
    violations: list[dict]
    quality: list[dict]

    def rows(self, family: str = CONSISTENCY) -> list[tuple]:
        return sorted(
            (v["rule"], v["event_type"], v["event_id"], v["request_id"], v["detail"])
            for v in self.violations
            if v["family"] == family
        )

    def quality_row(self, rule: str) -> dict:
        [row] = [q for q in self.quality if q["rule"] == rule]
        return row


def judge(
    lake: LakeHelper, day: date = DAY, thresholds: Thresholds = DEFAULT, **kwargs: Any
) -> Outcome:
    """run_contracts, then the two tables it wrote, read back."""
    result = run_contracts(lake.lake, day, thresholds, **{"data_docs": False, **kwargs})
    violations = pq.read_table(lake.root / contracts_file(day)).to_pylist()
    quality = pq.read_table(lake.root / quality_file(day)).to_pylist()
    assert {v["event_date"] for v in violations} <= {day}
    assert {q["event_date"] for q in quality} == {day}
    assert result.violations == len(violations)
    assert result.quality == [{k: v for k, v in q.items() if k != "event_date"} for q in quality]
    return Outcome(result, violations, quality)


def assert_rate(row: dict, checked: int, failed: int) -> None:
    assert (row["checked"], row["failed"]) == (checked, failed)
    assert row["rate"] == pytest.approx((checked - failed) / checked if checked else 1.0)


def chain_counts(docs: list[dict], day: date = DAY) -> Counter:
    return Counter(d["event_type"] for d in docs if event_date(d) == day)


# --- 1. a clean day -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory) -> tuple[LakeHelper, list[dict], Outcome]:
    lake = LakeHelper(tmp_path_factory.mktemp("clean") / "lake")
    chains = [
        build_chain(at(DAY, 8), clicked=(1, 2)),
        build_chain(at(DAY, 12), user="u-000002", n_items=5, shown=(1, 2, 3, 4, 5), clicked=()),
        build_chain(at(DAY, 18), user="u-000003", experiment=None, k=3, shown=(3,), clicked=(3,)),
    ]
    docs = [e for c in chains for e in c.events]
    docs.append(error_event(at(DAY, 8, seconds=1), chains[0].request_id))
    land_on_event_dates(lake, docs)
    lake.ingest(DAY)
    return lake, docs, judge(lake, DAY, data_docs=True)


def test_clean_day_has_no_violation_in_any_family(clean_day):
    _, docs, out = clean_day
    counts = chain_counts(docs)
    assert out.violations == [] and out.result.violations == 0
    assert out.result.day == DAY
    assert out.result.neighbours == {"previous_day": False, "next_day": False}
    assert out.result.pending_next_day == 0
    chain_events = sum(n for t, n in counts.items() if t != "error")
    expected_checked = {
        COMPLETENESS: len(docs),
        CONSISTENCY: chain_events,
        VALIDITY: len(docs),
        TIMELINESS: len(docs),
    }
    assert set(out.result.rates) == set(FAMILIES)
    for family in FAMILIES:
        assert out.result.rates[family]["rate"] == 1.0
        assert_rate(out.quality_row(family), expected_checked[family], 0)
        assert out.quality_row(family)["scope"] == "family"
    for rule in CONSISTENCY_RULES:
        row = out.quality_row(rule.name)
        assert row["family"] == CONSISTENCY and row["scope"] == "rule"
        assert_rate(row, sum(counts[t] for t in rule.event_types), 0)
    # The schema-derived rules (GX) find nothing either, gated or not.
    gx_rows = [q for q in out.quality if q["family"] in (COMPLETENESS, VALIDITY)]
    assert len(gx_rows) > 50
    gated = [q for q in gx_rows if q["scope"] == "rule"]
    assert gated and all(q["failed"] == 0 for q in gated)
    assert_rate(out.quality_row("landed_in_window"), len(docs), 0)
    assert_rate(out.quality_row("landed_on_date"), len(docs), 0)


def test_data_docs_site_is_published(clean_day):
    lake, _, out = clean_day
    index = lake.root / "reports" / "data_docs" / "index.html"
    assert index.is_file() and index.stat().st_size > 0
    assert out.result.data_docs == lake.lake.url("reports/data_docs/index.html")
    assert out.result.data_docs.endswith("reports/data_docs/index.html")


# --- 2. one broken chain per case, beside clean chains ------------------------------------------


@dataclass
class Case:
    name: str
    chain: Chain
    flagged: list[tuple] = field(default_factory=list)  # expected rows; none: a clean chain

    @property
    def rules(self) -> set[str]:
        return {row[0] for row in self.flagged}


def broken_cases() -> list[Case]:
    cases: list[Case] = []
    clock = iter(range(1, 200))

    def start() -> int:
        return at(DAY, 1, minutes=7 * next(clock))

    def case(name: str, chain: Chain, *flagged: tuple) -> None:
        cases.append(Case(name, chain, list(flagged)))

    case("clean", build_chain(start(), clicked=(1, 2)))
    c = build_chain(start(), n_items=4, shown=(1, 2, 3, 4), clicked=(2,))
    c.add(
        "click", c.one("click")["timestamp_ms"] + 50, canonical_id=item(2), engagement_type="save"
    )
    case("clean: a click and a save on one item", c)

    # request_has_one_ranking
    c = build_chain(start())
    c.drop("ranking", "impression", "click")
    case(
        "request without ranking",
        c,
        flag("request_has_one_ranking", c.one("request"), "request has 0 rankings"),
    )
    c = build_chain(start())
    first = c.one("ranking")
    c.add("ranking", first["timestamp_ms"] + 40, items=first["items"])
    case(
        "request with two rankings",
        c,
        flag("request_has_one_ranking", c.one("request"), "request has 2 rankings"),
    )

    # ranking_has_one_request
    c = build_chain(start())
    c.drop("request")
    case(
        "ranking without request",
        c,
        flag("ranking_has_one_request", c.one("ranking"), "ranking has 0 requests"),
    )
    c = build_chain(start())
    c.add("request", c.one("request")["timestamp_ms"] + 20)  # the example's k and experiment
    case(
        "ranking with two requests",
        c,
        flag("ranking_has_one_request", c.one("ranking"), "ranking has 2 requests"),
    )

    # impression_has_ranking: an impression whose request_id nothing else knows
    c = Chain(str(uuid.uuid4()), "u-000001")
    lone = c.add("impression", start(), canonical_id=item(1), position=1)
    case(
        "impression without ranking",
        c,
        flag("impression_has_ranking", lone, "no ranking for this request_id"),
    )

    # impression_matches_ranked_item
    c = build_chain(start(), shown=(2,), clicked=())
    shown = c.one("impression")
    shown["canonical_id"] = item(1)  # item 1 is ranked at 1, shown at 2
    case(
        "impression at the wrong position",
        c,
        flag(
            "impression_matches_ranked_item",
            shown,
            f"item {item(1)} at position 2 is not in the ranking at that position",
        ),
    )
    c = build_chain(start(), clicked=())
    stranger = c.add(
        "impression",
        c.of("impression")[-1]["timestamp_ms"] + 10,
        canonical_id="item-99999",
        position=3,
    )
    case(
        "impression of an item not in the ranking",
        c,
        flag(
            "impression_matches_ranked_item",
            stranger,
            "item item-99999 at position 3 is not in the ranking at that position",
        ),
    )

    # click_has_impression: item 3 is ranked, never shown, clicked
    c = build_chain(start(), shown=(1, 2), clicked=(3,))
    case(
        "click without impression",
        c,
        flag(
            "click_has_impression",
            c.one("click"),
            f"no impression of item {item(3)} for this request_id",
        ),
    )

    # click_is_unique: the later click is flagged even though its event_id sorts first
    c = build_chain(start(), clicked=(1,))
    first_click = c.one("click")
    first_click["event_id"] = "ffffffff-ffff-4fff-bfff-ffffffffffff"
    second = c.add(
        "click",
        first_click["timestamp_ms"] + 700,
        canonical_id=item(1),
        engagement_type="click",
        event_id="00000000-0000-4000-8000-000000000000",
    )
    case(
        "second click on one item",
        c,
        flag("click_is_unique", second, f"click number 2 on item {item(1)}"),
    )

    # user_agrees_with_request: one impression carries another user
    c = build_chain(start(), shown=(1, 2), clicked=())
    foreign = c.of("impression")[1]
    foreign.update(user_id="u-000777", session_id="s-u-000777")
    case(
        "impression of another user",
        c,
        flag("user_agrees_with_request", foreign, "user_id differs from the request's"),
    )

    # experiment_agrees_with_request
    c = build_chain(start())
    c.one("ranking")["bucket"] = "treatment"
    case(
        "ranking in another bucket",
        c,
        flag(
            "experiment_agrees_with_request",
            c.one("ranking"),
            "ranking has exp-ranker-v2/treatment, request has exp-ranker-v2/control",
        ),
    )
    case(
        "clean: request without experiment, ranking with one",
        build_chain(start(), experiment=None),
    )

    # time_order: a ranking before its request, beyond the skew, at it, within it
    c = build_chain(start(), ranking_after_ms=-(SKEW + 1000))
    case(
        "ranking 6 s before its request",
        c,
        flag("time_order", c.one("ranking"), f"ranking is {SKEW + 1000} ms before its request"),
    )
    case("clean: ranking exactly the skew early", build_chain(start(), ranking_after_ms=-SKEW))
    case("clean: ranking 3 s early", build_chain(start(), ranking_after_ms=-3000))

    # items_within_k
    c = build_chain(start(), k=2, n_items=3)
    case(
        "three items for k = 2",
        c,
        flag("items_within_k", c.one("ranking"), "3 items for k = 2"),
    )
    case("clean: exactly k items", build_chain(start(), k=3, n_items=3))

    # One event breaking two rules: a row per rule, one failed event in the family's rate.
    c = build_chain(start())
    twice = c.one("ranking")
    twice.update(user_id="u-000777", bucket="treatment")
    case(
        "ranking of another user in another bucket",
        c,
        flag("user_agrees_with_request", twice, "user_id differs from the request's"),
        flag(
            "experiment_agrees_with_request",
            twice,
            "ranking has exp-ranker-v2/treatment, request has exp-ranker-v2/control",
        ),
    )
    return cases


def neighbour_noise(day: date) -> list[dict]:
    """Broken chains of a neighbour day: read as partners by D's rules, never judged for D."""
    no_ranking = build_chain(at(day, 12))
    no_ranking.drop("ranking")
    no_request = build_chain(at(day, 13), k=1)
    no_request.drop("request")
    stranger = build_chain(at(day, 14), clicked=(3,))
    stranger.one("ranking")["user_id"] = "u-000777"
    stranger.one("ranking")["bucket"] = "treatment"
    twice = build_chain(at(day, 15), ranking_after_ms=-(SKEW + 1000))
    twice.add("click", at(day, 15, seconds=9), canonical_id=item(1), engagement_type="click")
    return [e for c in (no_ranking, no_request, stranger, twice) for e in c.events]


@pytest.fixture(scope="module")
def broken_day(tmp_path_factory) -> tuple[LakeHelper, list[Case], Outcome]:
    lake = LakeHelper(tmp_path_factory.mktemp("broken") / "lake")
    cases = broken_cases()
    docs = [e for case in cases for e in case.chain.events]
    assert {event_date(d) for d in docs} == {DAY}
    docs.append(error_event(at(DAY, 0, 30), cases[0].chain.request_id))
    previous = DAY - timedelta(days=1)
    land_on_event_dates(lake, docs + neighbour_noise(previous) + neighbour_noise(NEXT))
    ingest = lake.ingest(DAY)
    assert ingest.quarantined == {} and ingest.rows_total == len(docs)
    lake.ingest(previous)
    lake.ingest(NEXT)
    return lake, cases, judge(lake, DAY)


def _case_named(cases: list[Case], name: str) -> Case:
    [case] = [c for c in cases if c.name == name]
    return case


def test_every_consistency_rule_is_broken_by_some_case(broken_day):
    _, cases, _ = broken_day
    assert set().union(*(c.rules for c in cases)) == set(RULE_NAMES)
    assert [c.name for c in cases if len(c.rules) > 1] == [
        "ranking of another user in another bucket"
    ]


def test_broken_day_violations_are_exactly_the_cases(broken_day):
    _, cases, out = broken_day
    expected = sorted(row for case in cases for row in case.flagged)
    assert out.rows(CONSISTENCY) == expected
    # Nothing from the other families: the events themselves are all valid and punctual.
    assert [v for v in out.violations if v["family"] != CONSISTENCY] == []
    assert out.result.violations == len(expected) == 15
    # Both neighbours are ingested (and full of broken chains of their own, not judged here).
    assert out.result.neighbours == {"previous_day": True, "next_day": True}
    assert out.result.pending_next_day == 0


@pytest.mark.parametrize("case_name", [c.name for c in broken_cases()])
def test_each_case_flags_only_its_own_events(broken_day, case_name):
    _, cases, out = broken_day
    case = _case_named(cases, case_name)
    own = [r for r in out.rows() if r[3] == case.chain.request_id]
    assert own == sorted(case.flagged)
    for rule, event_type, *_ in case.flagged:
        assert event_type in RULE_TYPES[rule]


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_rule_flags_exactly_its_offenders(broken_day, rule):
    _, cases, out = broken_day
    expected = sorted(row for c in cases for row in c.flagged if row[0] == rule)
    assert expected, f"no case breaks {rule}"
    assert [r for r in out.rows() if r[0] == rule] == expected
    docs = [e for c in cases for e in c.chain.events]
    counts = chain_counts(docs)
    assert_rate(
        out.quality_row(rule),
        sum(counts[t] for t in RULE_TYPES[rule]),
        len({r[2] for r in expected}),
    )


def test_consistency_rate_counts_each_failed_event_once(broken_day):
    _, cases, out = broken_day
    docs = [e for c in cases for e in c.chain.events]
    rows = [r for c in cases for r in c.flagged]
    failed = {(r[1], r[2]) for r in rows}
    assert (len(rows), len(failed)) == (15, 14)  # one ranking breaks two rules
    assert_rate(out.quality_row(CONSISTENCY), len(docs), len(failed))
    rates = out.result.rates[CONSISTENCY]
    assert (rates["checked"], rates["failed"]) == (len(docs), len(failed))
    assert rates["rate"] == pytest.approx((len(docs) - len(failed)) / len(docs))
    for family in (COMPLETENESS, VALIDITY, TIMELINESS):
        assert out.result.rates[family]["rate"] == 1.0


@pytest.mark.parametrize(
    ("clock_skew_ms", "early_by"),
    [(2000, (SKEW + 1000, SKEW, 3000)), (SKEW + 1000, ())],
    ids=["skew-2s", "skew-6s"],
)
def test_clock_skew_changes_the_time_order_verdict(broken_day, clock_skew_ms, early_by):
    """The same day under another clock_skew_ms: only time_order's rows change."""
    lake, cases, first = broken_day
    out = judge(lake, DAY, Thresholds(clock_skew_ms=clock_skew_ms))
    early = {
        c.chain.one("request")["timestamp_ms"] - c.chain.one("ranking")["timestamp_ms"]: c
        for c in cases
        if c.name.startswith(("ranking 6 s", "clean: ranking"))
    }
    assert sorted(early) == [3000, SKEW, SKEW + 1000]
    expected_time_order = sorted(
        flag("time_order", early[ms].chain.one("ranking"), f"ranking is {ms} ms before its request")
        for ms in early_by
    )
    assert [r for r in out.rows() if r[0] == "time_order"] == expected_time_order
    assert [r for r in out.rows() if r[0] != "time_order"] == [
        r for r in first.rows() if r[0] != "time_order"
    ]
    assert out.quality_row("time_order")["failed"] == len(early_by)


def test_rerun_writes_the_same_tables(broken_day):
    lake, _, first = broken_day
    again = judge(lake, DAY)

    def key(row: dict) -> tuple:
        return tuple(str(v) for v in row.values())

    assert sorted(again.violations, key=key) == sorted(first.violations, key=key)
    assert sorted(again.quality, key=key) == sorted(first.quality, key=key)
    assert again.result.rates == first.result.rates
    schema = pq.read_schema(lake.root / contracts_file(DAY))
    assert schema.names == [
        "event_date",
        "family",
        "rule",
        "event_type",
        "event_id",
        "request_id",
        "detail",
    ]


# --- 3. midnight ---------------------------------------------------------------------------------


@dataclass
class Midnight:
    across: Chain  # request at 23:59:59.500 on D, the rest after midnight
    late_click: Chain  # everything on D but the click, at 00:00:01 on D+1
    before: Outcome  # D judged while D+1 is not ingested
    day: Outcome  # D judged with D+1 ingested
    next_day: Outcome  # D+1 judged


@pytest.fixture(scope="module")
def midnight(tmp_path_factory) -> Midnight:
    lake = LakeHelper(tmp_path_factory.mktemp("midnight") / "lake")
    across = build_chain(
        at(DAY, 23, 59, 59, 500),
        ranking_after_ms=700,
        impression_after_ms=900,
        click_after_ms=2500,
    )
    late_click = build_chain(
        at(DAY, 23, 59, 58),
        shown=(1,),
        ranking_after_ms=200,
        impression_after_ms=1000,
        click_after_ms=3000,
    )
    clean = build_chain(at(DAY, 12))
    next_clean = build_chain(at(NEXT, 12), user="u-000002")
    land_on_event_dates(lake, across.events + late_click.events + clean.events + next_clean.events)
    lake.ingest(DAY)
    before = judge(lake, DAY)
    lake.ingest(NEXT)
    return Midnight(across, late_click, before, judge(lake, DAY), judge(lake, NEXT))


def test_midnight_chain_lands_on_both_days(midnight):
    m = midnight
    assert [event_date(e) for e in m.across.events] == [DAY] + [NEXT] * 4
    assert event_date(m.late_click.one("impression")) == DAY
    assert event_date(m.late_click.one("click")) == NEXT


def test_midnight_chain_is_consistent_with_both_days_ingested(midnight):
    m = midnight
    for out in (m.day, m.next_day):
        assert out.rows(CONSISTENCY) == []
        assert out.result.rates[CONSISTENCY]["rate"] == 1.0
        assert out.result.pending_next_day == 0
    assert m.day.result.neighbours == {"previous_day": False, "next_day": True}
    assert m.next_day.result.neighbours == {"previous_day": True, "next_day": False}
    # D judged the midnight request (beside two others); D+1 judged the rest of its chain and
    # the late click, whose impression was read from D.
    assert m.day.quality_row("request_has_one_ranking")["checked"] == 3
    assert m.next_day.quality_row("click_has_impression")["checked"] == 3
    assert m.next_day.quality_row("time_order")["checked"] == 2 + 4 + 3  # rankings, imps, clicks


def test_midnight_request_pends_while_next_day_is_missing(midnight):
    m = midnight
    out = m.before
    assert out.result.neighbours == {"previous_day": False, "next_day": False}
    assert out.rows(CONSISTENCY) == [
        flag("request_has_one_ranking", m.across.one("request"), "request has 0 rankings")
    ]
    assert out.result.pending_next_day == 1
    assert_rate(out.quality_row("request_has_one_ranking"), 3, 1)


# --- 4. timeliness --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def late_lines(tmp_path_factory) -> tuple[LakeHelper, dict[str, dict], list[dict], Outcome]:
    lake = LakeHelper(tmp_path_factory.mktemp("late") / "lake")
    chains = [build_chain(at(DAY, 9)), build_chain(at(DAY, 15), clicked=())]
    punctual = [e for c in chains for e in c.events]
    odd = {
        # quarantined as late_arrival by partition D+3: judged against D's timeliness
        "late": chains[1].add(
            "click",
            at(DAY, 15, seconds=5),
            canonical_id=item(1),
            engagement_type="click",
        ),
        "next_day": error_event(at(DAY, 20), chains[0].request_id),  # landed on D+1
        "day_before": error_event(at(DAY, 0, 0, 1), chains[0].request_id),  # a clock ahead
        # late too, in the same quarantine, but an event of D-1: not D's to count
        "other_day": error_event(at(DAY - timedelta(days=1), 20), chains[0].request_id),
    }
    lake.land(DAY, "a.jsonl", [line(e) for e in punctual])
    lake.land(DAY + timedelta(days=3), "late.jsonl", [line(odd["late"]), line(odd["other_day"])])
    lake.land(NEXT, "b.jsonl", [line(odd["next_day"])])
    lake.land(DAY - timedelta(days=1), "c.jsonl", [line(odd["day_before"])])
    lake.ingest(DAY)
    lake.ingest(DAY + timedelta(days=3))
    valid = [*punctual, odd["next_day"], odd["day_before"]]
    return lake, odd, valid, judge(lake, DAY)


def test_line_landed_after_the_window_is_a_timeliness_violation(late_lines):
    lake, odd, valid, out = late_lines
    later = DAY + timedelta(days=3)
    quarantined = lake.quarantine(later)
    assert [(q["reason"], q["event_id"], q["event_date_read"]) for q in quarantined] == [
        ("late_arrival", odd["late"]["event_id"], DAY),
        ("late_arrival", odd["other_day"]["event_id"], DAY - timedelta(days=1)),
    ]
    [row] = out.violations
    assert (row["family"], row["rule"], row["event_type"], row["event_id"]) == (
        TIMELINESS,
        "landed_in_window",
        "click",
        odd["late"]["event_id"],
    )
    assert row["request_id"] is None
    landing_file = quarantined[0]["landing_file"]
    assert landing_file == f"landing/dt={later}/late.jsonl"
    assert row["detail"] == f"landed on {later} (3 days after), {landing_file} line 1"
    n = len(valid)
    assert out.result.rates[TIMELINESS]["rate"] == pytest.approx(n / (n + 1))
    assert_rate(out.quality_row(TIMELINESS), n + 1, 1)
    assert_rate(out.quality_row("landed_in_window"), n + 1, 1)
    assert out.quality_row("landed_in_window")["scope"] == "rule"
    # The late click never reached events/: consistency judged (and passed) without it.
    assert out.rows(CONSISTENCY) == []
    assert_rate(out.quality_row(CONSISTENCY), len(valid) - 2, 0)


def test_line_landed_next_day_is_reported_not_gated(late_lines):
    _, odd, valid, out = late_lines
    n = len(valid)
    # landed after its date: the D+1 line and the late line; after T+1: the late line only.
    # The D-1 line (a client clock ahead) counts as on time.
    for rule, failed in (("landed_on_date", 2), ("landed_by_t1", 1)):
        row = out.quality_row(rule)
        assert row["scope"] == "reported"
        assert_rate(row, n + 1, failed)
    assert [v["event_id"] for v in out.violations] == [odd["late"]["event_id"]]


# --- 5. the ingest has not run --------------------------------------------------------------------


def test_contracts_before_ingest_says_to_materialise_it(tmp_path):
    lake = LakeHelper(tmp_path / "lake")
    land_on_event_dates(lake, build_chain(at(DAY, 9)).events)
    with pytest.raises(FileNotFoundError, match="materialise the ingest partition"):
        run_contracts(lake.lake, DAY, DEFAULT, data_docs=False)
    assert not (lake.root / contracts_file(DAY)).exists()
    assert not (lake.root / quality_file(DAY)).exists()


def test_pending_next_day_counts_only_partners_not_found(tmp_path):
    """A request with two rankings cannot be mended by D+1; an impression at 23:59:59 whose
    ranking was stamped just after midnight (within the skew) can."""
    lake = LakeHelper(tmp_path / "lake")
    twice = build_chain(at(DAY, 12), shown=(), clicked=())
    twice.add("ranking", at(DAY, 12, seconds=1), items=[twice.one("ranking")["items"][0]])
    across = build_chain(
        at(DAY, 23, 59, 58, 800),
        shown=(1,),
        clicked=(),
        ranking_after_ms=1600,
        impression_after_ms=200,
    )
    assert event_date(across.one("ranking")) == DAY + timedelta(days=1)
    land_on_event_dates(lake, twice.events + across.events)
    lake.ingest(DAY)
    before = judge(lake)
    assert before.result.neighbours["next_day"] is False
    assert [r[0] for r in before.rows()] == sorted(
        ["impression_has_ranking", "request_has_one_ranking", "request_has_one_ranking"]
    )
    assert before.result.pending_next_day == 2  # the impression and the midnight request
    lake.ingest(DAY + timedelta(days=1))
    after = judge(lake)
    assert after.rows() == [
        flag("request_has_one_ranking", twice.one("request"), "request has 2 rankings")
    ]
    assert after.result.pending_next_day == 0
