"""Key rotation across a boundary day, through the real ingest, contracts and rollups.

Two keys, the new one active from ROTATION (a Tuesday), overlap 2 days: D-1 is hashed with the old
key only, ROTATION and ROTATION+1 with the new key plus user_id_prev under the old one, ROTATION+2
on with the new key only. A chain crossing midnight into the rotation day must still satisfy the
user-agreement rule, D's rows must join D-1's through user_id_prev, and the week's distinct users
must count each user once."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest

from pipelines.lib.contracts.rules import CONSISTENCY
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import DatedKey, Keyring
from pipelines.lib.lake.storage import Lake
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.requests import parse_request
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup, rollup_file
from tests.conftest import LakeHelper, line
from tests.contracts.test_rules import at, build_chain, judge, land_on_event_dates

OLD = b"old-key-" + b"0123456789abcdef" * 2
NEW = b"new-key-" + b"fedcba9876543210" * 2
MONDAY = date(2025, 6, 2)
ROTATION = MONDAY + timedelta(days=1)
WEEK = [MONDAY + timedelta(days=n) for n in range(7)]
KEYS = Keyring([DatedKey(OLD, date(2025, 1, 1), "2025-a"), DatedKey(NEW, ROTATION, "2025-b")], 2)


def old(raw: str) -> str:
    return pii.hmac_hex(OLD, raw)


def new(raw: str) -> str:
    return pii.hmac_hex(NEW, raw)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> LakeHelper:
    lake = LakeHelper(tmp_path_factory.mktemp("rotation") / "lake")
    chains = [
        # u-1 on the eve, across midnight into the rotation day, and after the overlap.
        build_chain(at(MONDAY, 10), user="u-1"),
        build_chain(
            at(MONDAY, 23, 59, 59, 500),
            user="u-1",
            ranking_after_ms=700,
            impression_after_ms=900,
            click_after_ms=1500,
        ),
        build_chain(at(ROTATION + timedelta(days=2), 9), user="u-1"),
        # u-2 on the rotation day and the day after (both in the overlap).
        build_chain(at(ROTATION, 12), user="u-2"),
        build_chain(at(ROTATION + timedelta(days=1), 12), user="u-2"),
    ]
    # A chain across the boundary whose ranking names another user: still a violation.
    liar = build_chain(at(MONDAY, 23, 59, 59, 800), user="u-9", ranking_after_ms=400)
    liar.one("ranking")["user_id"] = "u-8"
    docs = [e for c in [*chains, liar] for e in c.events]
    land_on_event_dates(lake, docs)
    # A rejected line on the rotation day: redacted with the day's key.
    bad = dict(chains[3].one("click"), event_id="not-a-uuid", user_id="u-2")
    lake.land(ROTATION, "bad.jsonl", [line(bad)])
    lake.liar = liar  # type: ignore[attr-defined]
    for day in WEEK:
        lake.ingest(day, keys=KEYS)
    return lake


def rows(lake: LakeHelper, event_type: str, day: date) -> list[dict]:
    return lake.events(event_type, day)


def test_each_day_is_hashed_with_its_key_and_the_overlap_carries_the_previous_hash(rotated):
    eve = rows(rotated, "request", MONDAY)
    assert {(r["pii_key_id"], r["user_id"], r["user_id_prev"]) for r in eve} == {
        (pii.key_id(OLD), old("u-1"), None),
        (pii.key_id(OLD), old("u-9"), None),
    }
    on_day = rows(rotated, "request", ROTATION)
    assert {(r["pii_key_id"], r["user_id"], r["user_id_prev"]) for r in on_day} == {
        (pii.key_id(NEW), new("u-2"), old("u-2"))
    }
    # Every user_id of the overlap days carries its previous hash; session ids are not bridged.
    for event_type in ("request", "ranking", "impression", "click"):
        for day in (ROTATION, ROTATION + timedelta(days=1)):
            for r in rows(rotated, event_type, day):
                assert r["pii_key_id"] == pii.key_id(NEW)
                assert r["user_id_prev"] == old(_raw(r["user_id"]))
                if "session_id" in r:
                    assert r["session_id"] == new(f"s-{_raw(r['user_id'])}")
    after = rows(rotated, "request", ROTATION + timedelta(days=2))
    assert {(r["pii_key_id"], r["user_id"], r["user_id_prev"]) for r in after} == {
        (pii.key_id(NEW), new("u-1"), None)
    }
    # The ranking of the chain that crossed midnight is on the rotation day: new key, bridged.
    crossed = [r for r in rows(rotated, "ranking", ROTATION) if r["user_id"] == new("u-1")]
    assert len(crossed) == 1 and crossed[0]["user_id_prev"] == old("u-1")


def _raw(hashed: str) -> str:
    for raw in ("u-1", "u-2", "u-8", "u-9"):
        if hashed in (old(raw), new(raw)):
            return raw
    raise AssertionError(f"unknown hash {hashed}")


def test_user_id_prev_equals_the_eves_hash_and_joins_through_duckdb(rotated):
    eve_hashes = {r["user_id"] for r in rows(rotated, "request", MONDAY)}
    crossed = [r for r in rows(rotated, "ranking", ROTATION) if r["user_id"] == new("u-1")]
    assert crossed[0]["user_id_prev"] in eve_hashes
    found = rotated.query(
        "select distinct d.user_id, e.user_id "
        "from read_parquet('{root}/events/event_type=ranking/event_date=" + str(ROTATION) + "/*')"
        " as d join read_parquet('{root}/events/event_type=request/event_date="
        + str(MONDAY)
        + "/*') as e on e.user_id = d.user_id_prev"
    )
    assert found == [(new("u-1"), old("u-1"))]
    # A plain join on user_id finds nothing across the boundary: that is what the bridge is for.
    plain = rotated.query(
        "select count(*) from read_parquet('{root}/events/*/*/*.parquet', hive_partitioning = true)"
        " as d join read_parquet('{root}/events/event_type=request/event_date="
        + str(MONDAY)
        + "/*') as e on e.user_id = d.user_id where d.event_date = ?",
        ROTATION,
    )
    assert plain == [(0,)]


def test_every_stored_hash_is_found_under_some_key_of_the_keyring(rotated):
    # What erasure relies on: hashing a raw id under all_keys() finds every row of the user.
    hashes = {pii.hmac_hex(k.secret, "u-1") for k in KEYS.all_keys()}
    stored = rotated.query(
        "select user_id, user_id_prev from read_parquet('{root}/events/*/*/*.parquet') "
        "where user_id in (select unnest(?::varchar[])) or user_id_prev in "
        "(select unnest(?::varchar[]))",
        sorted(hashes),
        sorted(hashes),
    )
    assert {h for pair in stored for h in pair if h} == {old("u-1"), new("u-1")}
    assert len(stored) == 15  # three chains of u-1, five events each
    assert all(v is None or len(v) == 64 for pair in stored for v in pair)


def test_quarantine_and_ledger_use_the_days_key(rotated):
    [quarantined] = rotated.quarantine(ROTATION)
    assert quarantined["pii_key_id"] == pii.key_id(NEW)
    assert json.loads(quarantined["text"])["user_id"] == new("u-2")
    ledger = pq.read_table(rotated.root / f"ledger/event_date={ROTATION}").to_pylist()
    assert {r["pii_key_id"] for r in ledger} == {pii.key_id(NEW)}
    ledger = pq.read_table(rotated.root / f"ledger/event_date={MONDAY}").to_pylist()
    assert {r["pii_key_id"] for r in ledger} == {pii.key_id(OLD)}


def test_user_agreement_holds_across_the_boundary(rotated):
    liar = rotated.liar  # type: ignore[attr-defined]
    for day in (MONDAY, ROTATION):
        outcome = judge(rotated, day)
        agreement = [r for r in outcome.rows(CONSISTENCY) if r[0] == "user_agrees_with_request"]
        expected = (
            [
                (
                    "user_agrees_with_request",
                    "ranking",
                    liar.one("ranking")["event_id"],
                    liar.request_id,
                    "user_id differs from the request's",
                )
            ]
            if day == ROTATION
            else []
        )
        assert agreement == expected
        # Nothing else is broken either: the bridged chain is a clean chain.
        assert [r for r in outcome.rows(CONSISTENCY) if r[0] != "user_agrees_with_request"] == []


def test_the_week_counts_each_user_once_across_the_rotation(rotated):
    for day in WEEK:
        build_rollup(rotated.lake, MODELS_BY_NAME["traffic_daily"], day)
        build_rollup(rotated.lake, MODELS_BY_NAME["traffic_parts"], day)
    build_rollup(rotated.lake, MODELS_BY_NAME["traffic_weekly"], MONDAY)
    weekly = pq.read_table(rotated.root / rollup_file("traffic_weekly", "week", MONDAY)).to_pylist()
    [everyone] = [r for r in weekly if r["is_all_traffic"]]
    # u-1 (old key on Monday, new key bridged on Tuesday, new key only on Thursday), u-2, u-9.
    assert everyone["distinct_users"] == 3
    assert everyone["requests"] == 6
    links = rotated.query(
        "select distinct member from read_parquet('{root}/rollups/traffic_parts/*/*.parquet') "
        "where part_name = 'user_links' order by member"
    )
    # Links come from every event of the overlap days: u-8 is only on the liar's ranking, u-9 only
    # on events after midnight of a request before it.
    assert links == sorted((f"{old(u)}:{new(u)}",) for u in ("u-1", "u-2", "u-8", "u-9"))
    build_rollup(rotated.lake, MODELS_BY_NAME["experiments_weekly"], MONDAY)
    experiments = pq.read_table(
        rotated.root / rollup_file("experiments_weekly", "week", MONDAY)
    ).to_pylist()
    assert sum(r["users_assigned"] for r in experiments) == 3


def test_erasure_removes_both_hashes_of_a_user_across_the_rotation(tmp_path, rotated):
    copy = tmp_path / "lake"
    shutil.copytree(rotated.root, copy)
    lake = Lake(str(copy))
    request = parse_request({"request_id": "r-1", "user_ids": ["u-1"]}, at(ROTATION, 20))
    result = erase(lake, request, [k.secret for k in KEYS.all_keys()])
    assert result.hashes == sorted([old("u-1"), new("u-1")])
    assert set(result.proof.values()) == {0}
    rows = [
        row for path in copy.glob("events/*/*/*.parquet") for row in pq.read_table(path).to_pylist()
    ]
    ids = {row["user_id"] for row in rows} | {row.get("user_id_prev") for row in rows}
    assert not ids & {old("u-1"), new("u-1")}
    assert new("u-2") in ids and old("u-2") in ids  # the other user, bridged, is untouched
    erased_days = {r.day for r in result.rewrites if r.table == "events/request"}
    assert erased_days == {MONDAY, ROTATION + timedelta(days=2)}
