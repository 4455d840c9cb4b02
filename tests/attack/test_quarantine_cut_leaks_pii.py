"""The quarantine's text cap cuts PII in half *before* redacting it (issue 19 attack finding).

A quarantined line longer than ``quarantine_text_bytes`` (16 KiB) is cut to the cap, then
redacted. A value that straddles the cap is no longer recognised once cut, and is stored:
``alice.longname@example.c`` (an e-mail address short of one letter), or the first 15 digits of
a 16-digit card, whose last digit is the Luhn check digit (so the card is whole).
A natural case: a long error message (stack trace) over ``maxLength``, quarantined as a schema
violation, with an address or card near the 16 KiB mark."""

from __future__ import annotations

import pytest

from pipelines.lib.ingest.partition import IngestSettings
from tests.conftest import DAY, LakeHelper, event, line

LIMIT = IngestSettings().quarantine_text_bytes


def _line_cut_inside(value: str, shown: int) -> bytes:
    """An error line over the message's maxLength whose text, cut at LIMIT, ends after the
    first ``shown`` characters of ``value``."""
    text = line(event("error", message="MARK")).decode()
    head = text.split("MARK")[0]
    pad = LIMIT - len(head) - 1 - shown
    message = "a " * (pad // 2) + "a" * (pad % 2) + " " + value + " " + "b " * 100
    return text.replace("MARK", message).encode()


@pytest.mark.parametrize(
    ("value", "shown", "needle"),
    [
        ("alice.longname@example.com", len("alice.longname@example.c"), "alice.longname@example"),
        ("4111111111111111", 15, "411111111111111"),  # + Luhn check digit = the card
        ("4111 1111 1111 1111", 18, "4111 1111 1111 111"),
    ],
)
def test_a_value_cut_by_the_cap_is_not_stored(lake: LakeHelper, value, shown, needle) -> None:
    lake.land(DAY, "a.jsonl", [_line_cut_inside(value, shown)])
    lake.ingest()
    [row] = lake.quarantine()
    assert row["text_truncated"]
    assert needle not in row["text"], f"stored: ...{row['text'][-40:]!r}"
