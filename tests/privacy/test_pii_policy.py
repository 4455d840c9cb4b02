"""The PII policy through the real ingest: an identifier that holds PII quarantines its line as
``pii_in_field`` (whatever version the producer sent), and free text keeps its shape with typed
hash tokens in place of PII spans and of the event's own raw ids. The expected tokens are computed
here with the standard library's HMAC, independently of the SQL that writes them."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid

import pytest

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.lake.paths import ledger_dir
from pipelines.lib.schemas.registry import load_schema_versions
from tests.conftest import DAY, KEY, LakeHelper, event, line, ts

RAW_USER = "u-leaky-000777"
EMAIL = "alice.leak@example.com"
IPV4 = "203.0.113.77"
IPV6 = "2001:db8::8a2e:370:7334"
PHONE = "+44 7700 900123"


def _token(kind: str, value: str) -> str:
    digest = hmac.new(KEY.secret, value.encode(), hashlib.sha256).hexdigest()
    return f"<{kind}:{digest[:16]}>"


def _v1(event_type: str, **fields: object) -> dict:
    """A valid 1.0.0 event: that version declared no PII policy for its names."""
    [schema] = [s for s in load_schema_versions()[event_type] if s.version == "1.0.0"]
    doc = copy.deepcopy(schema.document["examples"][0])
    doc.update(event_id=str(uuid.uuid4()), timestamp_ms=ts(DAY), **fields)
    return doc


def _ranking_with(canonical_id: str) -> dict:
    doc = event("ranking")
    doc["items"] = [
        {"canonical_id": "item-1", "position": 1, "score": 0.9},
        {"canonical_id": canonical_id, "position": 2, "score": 0.8},
    ]
    return doc


@pytest.fixture
def ingested(lake: LakeHelper) -> LakeHelper:
    docs = [
        event("impression", canonical_id=IPV4),  # 1: the 2.0.0 pattern allows digits and dots
        _v1("request", surface=EMAIL),  # 2: 1.0.0 had no pattern on surface
        _ranking_with(IPV6),  # 3: nested identifier
        event("request", user_id=RAW_USER, surface=RAW_USER.replace("-", "_")),  # 4: fine
        _v1("request", user_id=RAW_USER, region=f"eu-{RAW_USER.upper()}"),  # 5: its own raw id
        event("click", canonical_id="07700900123"),  # 6: a bare trunk-0 phone, not an item id
        event("impression", canonical_id="12345678901"),  # 7: a numeric item id is fine
        event(
            "error",
            user_id=RAW_USER,
            message=(
                f"lookup for {RAW_USER} failed ({RAW_USER.upper()}); contact {EMAIL} or {PHONE}"
            ),
        ),  # 8: scrubbed, stored
        event("request", filters={EMAIL: "x", "ip": IPV4, "page": 2}),  # 9: scrubbed, stored
        event("request", surface="alice@example.com"),  # 10: 2.0.0's pattern refuses '@'
        event("request", filters={"n": 4111111111111111}),  # 11: no token fits in a JSON number
    ]
    lake.land(DAY, "a.jsonl", [line(d) for d in docs])
    lake.ingest()
    return lake


def test_identifiers_holding_pii_quarantine_their_line(ingested: LakeHelper) -> None:
    quarantined = {r["line_no"]: (r["reason"], r["detail"]) for r in ingested.quarantine()}
    assert quarantined == {
        1: ("pii_in_field", "canonical_id holds ipv4"),
        2: ("pii_in_field", "surface holds email"),
        3: ("pii_in_field", "items[].canonical_id holds ipv6"),
        5: ("pii_in_field", "region holds raw_id"),
        6: ("pii_in_field", "canonical_id holds phone"),
        10: ("schema_violation", "/surface:pattern"),
        11: ("pii_in_field", "filters holds pii_json_number"),
    }
    ledger = ingested.lake.read_partition(ledger_dir(DAY)).to_pylist()
    assert sum(r["quarantined_pii_in_field"] for r in ledger) == 6
    assert audit_ledger(ingested.lake, DAY).passed


def test_quarantined_text_and_detail_never_hold_the_value(ingested: LakeHelper) -> None:
    for row in ingested.quarantine():
        for raw in (
            EMAIL,
            IPV4,
            IPV6,
            RAW_USER,
            "07700900123",
            "alice@example.com",
            "4111111111111111",
        ):
            assert raw.lower() not in (row["text"] or "").lower(), (row["line_no"], row["text"])
            assert raw not in (row["detail"] or "")


def test_free_text_keeps_its_shape_with_hash_tokens(ingested: LakeHelper) -> None:
    [error] = ingested.events("error")
    user_hash = hmac.new(KEY.secret, RAW_USER.encode(), hashlib.sha256).hexdigest()
    assert error["user_id"] == user_hash
    assert error["message"] == (
        f"lookup for {_token('raw_id', RAW_USER)} failed ({_token('raw_id', RAW_USER)}); "
        f"contact {_token('email', EMAIL)} or {_token('phone', PHONE)}"
    )
    # The raw id's token is the prefix of the hash stored in user_id: it still joins.
    assert user_hash.startswith(_token("raw_id", RAW_USER)[8:-1])
    filters = [json.loads(r["filters"]) for r in ingested.events("request") if r["filters"]]
    scrubbed = [f for f in filters if "page" in f]
    assert scrubbed == [{_token("email", EMAIL): "x", "ip": _token("ipv4", IPV4), "page": 2}]


def test_clean_identifiers_are_stored_as_sent(ingested: LakeHelper) -> None:
    assert [r["canonical_id"] for r in ingested.events("impression")] == ["12345678901"]
    surfaces = [r["surface"] for r in ingested.events("request")]
    assert "u_leaky_000777" in surfaces
    assert pii.key_id(KEY.secret) == ingested.events("impression")[0]["pii_key_id"]
