"""The PII detector's second look (issue 19, the attack's last round): PII hidden from the scan by
a '+' or %20 for a blank, a JSON-escaped '/', fullwidth or blank-padded or doubled list
delimiters, '_' before a word, a '.' after a letter beyond ASCII, or (in a name) a '.' after
anything. The SQL (``pii_unhide``, ``pii_second_look``, ``pii_scrub_whole``,
``pii_field_class`` in sql/ingest/pii_policy_macros.sql) and its Python twin
(``pipelines.lib.ingest.pii_second_look``, used by the quarantine's redaction) give the same text,
find
every hidden card and phone over many seeds, and flag none of the clean corpus."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import duckdb
import pytest

from pipelines.lib.ingest import pii, pii_policy, pii_redact, pii_second_look
from pipelines.lib.lake.sql import connect
from tests.ingest.test_pii_corpus import CLEAN, PII

KEY = b"second-look-test-key-of-32-bytes"
# Luhn-valid cards of three networks, as 4-4-4-4 groups (Amex's 15 digits as 4-4-4-3).
CARDS = ["4111111111111111", "5500000000000004", "378282246310005"]
PHONES_IN_NAMES = ["0612345678", "07700900123", "00491511234567", "+33612345678"]
# (separator between groups, as the attack wrote it): each hides the card from the first look.
HIDING_SEPARATORS = ["; ", " ; ", " | ", ";;", "||", "\uff1b", "\uff5c", "+", "%20", "\\/"]
WORDS = ["card", "paid", "ref", "pay", "declined", "today", "x", "GET /pay?c=", "body="]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect()
    pii_policy.install(con)
    yield con
    con.close()


def _groups(card: str) -> list[str]:
    return [card[i : i + 4] for i in range(0, len(card), 4)]


def _sql(con: duckdb.DuckDBPyConnection, expression: str, values: list[str]) -> list:
    con.execute("create or replace temp table v as select unnest($1::varchar[]) as value", [values])
    return [row[0] for row in con.execute(f"select {expression} from v").fetchall()]


def _hidden_cards(seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(20):
        separator = rng.choice(HIDING_SEPARATORS)
        body = separator.join(_groups(rng.choice(CARDS)))
        texts.append(f"{rng.choice(WORDS)} {body} {rng.choice(WORDS)}")
    return texts


def test_the_twins_undo_the_same_way(con: duckdb.DuckDBPyConnection) -> None:
    values = [c.value for c in CLEAN] + [p.value for p in PII]
    values += [text for seed in range(5) for text in _hidden_cards(seed)]
    assert _sql(con, "pii_unhide(value)", values) == [pii_second_look.unhide(v) for v in values]
    assert _sql(con, "pii_unhide_name(value)", values) == [
        pii_second_look.unhide(v, is_name=True) for v in values
    ]


@pytest.mark.parametrize("seed", range(25))
def test_free_text_with_a_hidden_card_is_replaced_whole(con, seed: int) -> None:
    texts = _hidden_cards(seed)
    first_look = _sql(con, "pii_scrub(value, ''::blob, ''::blob)", texts)
    # The first look finds none of them: what the second one adds.
    assert first_look == texts
    stored = _sql(con, "pii_scrub_whole(value, ''::blob, ''::blob, false)", texts)
    assert all(s.startswith("<card:") and s.endswith(">") and len(s) == 23 for s in stored), stored
    in_json = _sql(con, "pii_scrub_whole(to_json(value)::varchar, ''::blob, ''::blob, true)", texts)
    assert all(j.startswith('"<card:') for j in in_json), in_json
    # The quarantine's redaction (Python) leaves none of the cards' digits either.
    for text in texts:
        line = '{"event_type":"error","message":' + json.dumps(text) + "}"
        redacted = pii_redact.redact_line(line, KEY, frozenset({"event_type", "message"}))
        # (It decodes JSON escapes first, so a '\\/'-split card is a span of the first look.)
        assert "<card>" in redacted and not any(g in redacted for g in ("1111", "0000", "2822")), (
            text,
            redacted,
        )


@pytest.mark.parametrize("seed", range(20))
def test_a_card_or_phone_after_any_dot_in_a_name_is_found(con, seed: int) -> None:
    rng = random.Random(seed)
    heads = ["exp/", "exp.", "exp_", "ranker-v2", "clé", "карта", "item", "home"]
    values = [f"{rng.choice(heads)}.{rng.choice(CARDS + PHONES_IN_NAMES)}" for _ in range(20)]
    classes = _sql(con, "pii_field_class(value, []::varchar[])", values)
    expected = ["phone" if v.rsplit(".", 1)[1] in PHONES_IN_NAMES else "card" for v in values]
    assert classes == expected, list(zip(values, classes, strict=True))


# The attack's second round (free text): each hides PII from the first look; the second finds it.
HIDDEN_IN_TEXT = {
    "GET /login?next=%2Fpay%3Fcard%3D4111111111111111%26x%3D1": "card",
    "next=%2Fu%3Fip%3D203.0.113.77%26a%3D1": "ipv4",
    "GET /users?phone=%2B33612345678 failed": "phone",
    "phone=%2B33%206%2012%2034%2056%2078": "phone",
    "phone=0033+6+12+34+56+78": "phone",
    "inet6 addr:2001:db8::1/64 Scope:Global": "ipv6",
    "ip=2001%3Adb8%3A%3A1": "ipv6",
    'body {"phone":"\\u002B33612345678"}': "phone",
    "card 4111\\u003b1111\\u003b1111\\u003b1111 x": "card",
    "\uff10\uff16\uff0d\uff11\uff12\uff0d\uff13\uff14\uff0d\uff15\uff16\uff0d\uff17\uff18": "phone",
    "card 4111\u20131111\u20131111\u20131111 x": "card",
    "card 4111 \u2013 1111 \u2013 1111 \u2013 1111 x": "card",
    "card 4111\u20221111\u20221111\u20221111 x": "card",
    "card 4111\t;\t1111\t;\t1111\t;\t1111 x": "card",
    "card 4111\xa0|\xa01111\xa0|\xa01111\xa0|\xa01111 x": "card",
}
# Clean text the second look must leave alone (prose lists of years and ports, stack traces).
CLEAN_TEXT = [
    "no data for fiscal years 2023, 2024, 2025, 2026",
    "ports 3000, 3001, 3002, 3003 already in use",
    "backfill failed for 2010, 2011, 2012, 2013",
    "at std::vector::at (vector:1234)",
    "GET /search?q=red+shoes+size+42&page=2",
    "took 1.5 s; retried 3 times",
]


def test_what_the_attack_hid_in_free_text_is_found(con: duckdb.DuckDBPyConnection) -> None:
    texts = list(HIDDEN_IN_TEXT)
    assert _sql(con, "pii_class(value)", texts) == [None] * len(texts)  # the first look
    assert _sql(con, "pii_second_look(value, false)", texts) == list(HIDDEN_IN_TEXT.values())
    assert _sql(con, "pii_scrub_whole(value, ''::blob, ''::blob, false)", CLEAN_TEXT) == CLEAN_TEXT


def test_a_name_with_a_plus_reaches_the_second_look(con: duckdb.DuckDBPyConnection) -> None:
    """pii_maybe gates pii_field_class: the scan's candidates regex alone let these through."""
    names = ["ranker.4111+1111+1111+1111", "ranker_06+12+34+56+78", "peer:2001:db8::1"]
    assert _sql(con, "pii_maybe(value, []::varchar[])", names) == [True] * 3
    assert _sql(con, "pii_field_class(value, []::varchar[])", names) == ["card", "phone", "ipv6"]
    dotted_dates = ["exp.09.21.24.00.25", "run.2024.09.21", "ranker-v1.4.2"]
    assert _sql(con, "pii_field_class(value, []::varchar[])", dotted_dates) == [None] * 3


@pytest.mark.parametrize("seed", range(20))
def test_the_guard_lets_through_every_value_the_second_look_would_change(con, seed) -> None:
    rng = random.Random(seed)
    alphabet = "0123456789abcXYZ .:;|,_+%/\\-\t\xa0\u00e9\uff1b\uff0d\u2013\u2022u2B3A"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(300)]
    changed = _sql(con, "pii_unhide(value) <> value", values)
    guarded = _sql(con, "regexp_matches(value, pii_re_hidden())", values)
    assert [v for v, c, g in zip(values, changed, guarded, strict=True) if c and not g] == []
    assert _sql(con, "pii_unhide(value)", values) == [pii_second_look.unhide(v) for v in values]


def test_no_clean_value_is_flagged_by_the_second_look(con, record_property) -> None:
    values = [c.value for c in CLEAN]
    as_text = _sql(con, "pii_second_look(value, false)", values)
    as_name = _sql(con, "pii_second_look(value, true)", values)
    flagged = [v for v, t, n in zip(values, as_text, as_name, strict=True) if t or n]
    record_property("second_look_false_positives", f"{len(flagged)}/{len(values)}")
    assert flagged == []
    # ... nor by the quarantine's redaction in Python.
    assert [pii_redact._scrub_unescaped(v) for v in values if "\\" not in v] == [
        pii.scrub_text(v) for v in values if "\\" not in v
    ]
