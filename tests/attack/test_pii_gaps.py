"""PII that passes ingest as sent (issue 19 attack findings): each value below is personal data in
a format the issue promises to catch (cards with any separators, IBANs, phones in national forms,
e-mail addresses), put into a field a producer controls. After ingest, no Parquet file the lake
wrote may hold it (checked as JSON text of every row).

Found against the working tree of 2026-12-07 13:25 UTC (uncommitted detector changes included)."""

from __future__ import annotations

import pytest

from tests.attack.stored import ingest_one
from tests.conftest import LakeHelper, event


@pytest.mark.parametrize(
    "card",
    [
        "4111  1111  1111  1111",  # two spaces between groups (pasted)
        "4111 - 1111 - 1111 - 1111",
        # ';' and '|' end a run (they delimit lists of ids): a card split by one of them
        # throughout and standing alone is one (pipelines/lib/ingest/pii_cards.py).
        "4111|1111|1111|1111",
        "4111;1111;1111;1111",
    ],
)
def test_card_with_separators_in_error_message(lake: LakeHelper, card: str) -> None:
    stored = ingest_one(lake, event("error", message=f"charge failed for {card} today"))
    assert card not in stored


def test_card_with_double_spaces_in_filter_value(lake: LakeHelper) -> None:
    card = "5555  5555  5555  4444"
    stored = ingest_one(lake, event("request", filters={"q": card}))
    assert card not in stored


@pytest.mark.parametrize("iban", ["GB82_WEST_1234_5698_7654_32", "gb82.west.1234.5698.7654.32"])
def test_iban_with_separators_in_experiment_id(lake: LakeHelper, iban: str) -> None:
    stored = ingest_one(lake, event("request", experiment_id=iban))
    assert iban.lower() not in stored


@pytest.mark.parametrize(
    "phone",
    [
        "8 912 345 67 89",  # Russian national form, trunk 8
        "8-912-345-67-89",
        "06/12/34/56/78",  # French pairs with slashes
    ],
)
def test_national_phone_in_error_message(lake: LakeHelper, phone: str) -> None:
    stored = ingest_one(lake, event("error", message=f"please call {phone} back"))
    assert phone not in stored


@pytest.mark.parametrize(
    "address",
    [
        "alice&#64;example.com",  # HTML-escaped error text
        "alice&#x40;example.com",
        "alice\uff20example.com",  # fullwidth commercial at
    ],
)
def test_escaped_email_in_error_message(lake: LakeHelper, address: str) -> None:
    stored = ingest_one(lake, event("error", message=f"<p>unknown user {address}</p>"))
    assert address.lower() not in stored


@pytest.mark.parametrize(
    ("event_type", "field", "value", "needle"),
    [
        # '+' before a card: "no card starts after '+'" (it would be a phone), but 16 digits are
        # no E.164 phone either, so the card is neither.
        ("error", "message", "paid with +4111111111111111 today", "4111111111111111"),
        ("ranking", "model_version", "build+4111111111111111", "4111111111111111"),
        # '.' after a letter is part of a name, not a decimal point (0.4111...): a card may
        # start there.
        ("request", "experiment_id", "exp.4111111111111111", "4111111111111111"),
    ],
)
def test_card_after_plus_or_dot(lake: LakeHelper, event_type, field, value, needle) -> None:
    stored = ingest_one(lake, event(event_type, **{field: value}))
    assert needle not in stored
