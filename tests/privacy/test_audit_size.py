"""The erasure audit of a large request: the hash list is written once per request, not once per
rewritten partition, so erasing 200,000 ids writes an audit of a few MB that still names every
partition it rewrote, and whatever reads the audit (ingest's registry of erased users) still finds
every hash."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.erased_users import erased_users
from pipelines.lib.privacy.audit import REQUEST, REWRITTEN, read_audit, write_audit
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.rebuild import Rebuilt
from pipelines.lib.privacy.requests import parse_request
from tests.conftest import KEY, LakeHelper, event, line

IDS = 200_000
MAX_AUDIT_BYTES = 20_000_000
DAYS = [date(2025, 6, 2) + timedelta(days=n) for n in range(0, 12, 4)]  # reads never overlap
VICTIMS = [f"victim-{n}" for n in range(4)]
RECEIVED = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
COMPLETED = datetime(2025, 7, 1, 9, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def big_erasure(tmp_path_factory: pytest.TempPathFactory):
    helper = LakeHelper(tmp_path_factory.mktemp("audit") / "lake")
    for day in DAYS:
        lines = [
            line(event(event_type, day, 60.0 * n, user_id=user))
            for n, user in enumerate([*VICTIMS, "bystander-1", "bystander-2"])
            for event_type in ("click", "impression")
        ]
        helper.land(day, "events.jsonl", lines)
        helper.ingest(day)
    ids = VICTIMS + [f"generated-{n:06d}" for n in range(IDS - len(VICTIMS))]
    request = parse_request({"request_id": "r-big", "user_ids": ids}, RECEIVED)
    erasure = erase(helper.lake, request, [KEY.secret], "512MB", 2)
    rel = write_audit(helper.lake, erasure, Rebuilt(), [], COMPLETED, "run-0123456789")
    return helper, erasure, rel


def test_the_audit_of_200k_ids_is_small(big_erasure):
    helper, erasure, rel = big_erasure
    assert len(erasure.hashes) == IDS
    size = (helper.root / rel).stat().st_size
    assert size < MAX_AUDIT_BYTES, size


def test_the_audit_names_every_rewritten_partition_and_holds_the_hashes_once(big_erasure):
    helper, erasure, rel = big_erasure
    rewritten = {(r.table, r.partition, r.rows_removed) for r in erasure.rewrites}
    # Both event types and the ledger, on each day.
    assert len(rewritten) == 3 * len(DAYS)
    rows = pq.read_table(helper.root / rel).to_pylist()
    assert {
        (r["table_name"], r["partition"], r["rows_removed"])
        for r in rows
        if r["action"] == REWRITTEN
    } == rewritten
    [request_row] = [r for r in rows if r["action"] == REQUEST]
    assert request_row["hashed_ids"] == erasure.hashes
    assert all(r["hashed_ids"] is None for r in rows if r["action"] != REQUEST)
    assert {r["request_id"] for r in rows} == {"r-big"}
    # read_audit gives every row its request's hashes back, for whoever wants them per action.
    entry = read_audit(helper.lake, rel)
    assert entry.hashed_ids == erasure.hashes
    assert [a.partition for a in entry.actions if a.action == REWRITTEN] == [
        r.partition for r in erasure.rewrites
    ]


def test_ingest_still_drops_every_erased_user(big_erasure):
    helper, erasure, _ = big_erasure
    registry = erased_users(helper.lake)
    assert registry.num_rows == IDS
    assert set(registry["hashed_id"].to_pylist()) == set(erasure.hashes)
    assert set(registry["received_on"].to_pylist()) == {RECEIVED.date()}
    # A re-ingest from landing (which still holds the victims' raw lines) does not bring them back.
    result = helper.ingest(DAYS[0])
    assert result.erased == 2 * len(VICTIMS)
    hashed = {pii.hmac_hex(KEY.secret, v) for v in VICTIMS}
    for event_type in ("click", "impression"):
        assert not hashed & {r["user_id"] for r in helper.events(event_type, DAYS[0])}
