"""Cards split by ';' or '|' and cards after a name's '.' (pipelines/lib/ingest/pii_cards.py and
its SQL
twin sql/ingest/pii_cards.sql): found by both twins where they stand alone, and nothing else
changed: decimals, versions and lists of ids stay, and a list head hides nothing that follows it
(tests/attack/test_pii_gaps.py has the findings these close, end to end)."""

from __future__ import annotations

import random
import re

import pytest

from pipelines.lib.ingest import pii, pii_detect

KEY = b"pii-cards-test-key-of-32-bytes!!"
TOKEN_RE = re.compile(r"<(email|ipv4|ipv6|phone|card|iban):[0-9a-f]{16}>")

# (text, what both scrubbers make of it)
FOUND = [
    # split by one delimiter throughout, standing alone: free text
    ("charge failed for 4111|1111|1111|1111 today", "charge failed for <card> today"),
    ("charge failed for 4111;1111;1111;1111 today", "charge failed for <card> today"),
    ("card=5555;5555;5555;4444, retry", "card=<card>, retry"),
    ("4111;1111;1111;1111", "<card>"),
    ("amex 3782|822463|10005.", "amex <card>."),  # 4-6-5
    ("diners 3622;720627;1667", "diners <card>"),  # 4-6-4
    ("visa13 4222;222;222;222", "visa13 <card>"),  # 4-3-3-3
    ("visa19 4000|0000|0000|0000|006 ok", "visa19 <card> ok"),  # 4-4-4-4-3
    ('{"q": "4111|1111|1111|1111"}', '{"q": "<card>"}'),
    # a lone delimiter on either side that no group goes on from: no longer list
    ("x;4111;1111;1111;1111", "x;<card>"),
    ("4111|1111|1111|1111|", "<card>|"),
    ("card=4111;1111;1111;1111; expires", "card=<card>; expires"),
    ("/pay/4111|1111|1111|1111;jsessionid=AB12", "/pay/<card>;jsessionid=AB12"),
    ("| 42 |4111|1111|1111|1111|", "| 42 |<card>|"),
    # split by ',' throughout, as by ';' or '|'
    ("card 4111,1111,1111,1111 declined", "card <card> declined"),
    ("[4111,1111,1111,1111]", "[<card>]"),
    ("2025,1234,5678,0612345678", "2025,1234,5678,<phone>"),
    # four blanks or more between the groups
    ("card 4111    1111    1111    1111 declined", "card <card> declined"),
    ("4111\t\t\t\t\t1111\t\t\t\t\t1111\t\t\t\t\t1111", "<card>"),
    ("tel 2025     0612345678 x", "tel 2025     <phone> x"),
    # after a '.' that follows a letter or starts the value: part of a name
    ("exp.4111111111111111", "exp.<card>"),
    ("sku.4111 1111 1111 1111", "sku.<card>"),
    ("exp.4111-1111-1111-1111_b", "exp.<card>_b"),
    ("exp.4111;1111;1111;1111", "exp.<card>"),
    (".4111111111111111", ".<card>"),
    ("ab.5555555555554444.x", "ab.<card>.x"),
    # what follows a list head is found as before
    ("2001;2002;2003;42@example.com", "2001;2002;2003;<email>"),
    ("2025;1234;5678;0612345678", "2025;1234;5678;<phone>"),
    ("2345;5678;2001:db8::1 up", "2345;5678;<ipv6> up"),
    ("2025;4111111111111111;0612345678", "2025;<card>;<phone>"),
    ("3333;4444;+44 7700 900123", "3333;4444;<phone>"),
    ("3333|4444|4111 1111 1111 1111", "3333|4444|<card>"),
]

KEPT = [
    # decimals and versions: '.' after a digit
    "0.4111111111111111",
    "score 0.4111111111111111",
    "1.4111111111111111",
    "v1.4111111111111111",
    "3.14159265358979323",
    " .4111111111111111",  # after a blank, not a name: maybe a decimal
    # a '.' after a letter: still no phone nor IPv4 (x.10.0.0.1 is part of a name)
    "exp.10.0.0.1",
    "tel.0612345678",
    "host.2001:db8::1",
    # lists of ids
    "12;345;6789",
    "123;456;789",
    "1111|2222",
    "1234|5678",
    "1234;5678;9012;3456",
    "4111;1111;1111;1112",  # Luhn fails
    "4111;1111|1111;1111",  # two delimiters
    "4111;1111;1111;1111;5678",  # 20 digits: a list of ids
    "1234;4111;1111;1111;1111",  # in a longer list
    "1;4111;1111;1111;1111",  # a group before it: in a longer list
    "1234    5678    9012    3456",  # four blanks, Luhn fails
    "ids 4111,1111,1111,1112",  # Luhn fails
    "ids 1,4111,1111,1111,1111",
    "4111,1111,1111,1111,2",
    "2019,2020,2021,2022",
    "4111|1111|1111|1111|2",  # a group after it
    "4111;1111;1111;1111-x",
    "4111;1111;1111;1111a",
    "4111111111111112;5500000000000005;6011000000000003",  # 16 digits each, no Luhn
    "+4111;1111;1111;1111",
]


def _placeholders(scrubbed: str) -> str:
    return TOKEN_RE.sub(r"<\1>", scrubbed)


def test_cards_split_by_a_list_delimiter_or_after_a_name_are_found_by_both_twins() -> None:
    texts = [text for text, _ in FOUND]
    sql = pii_detect.scrub(texts, KEY)
    classes = pii_detect.classify(texts)
    for (text, expected), scrubbed, cls in zip(FOUND, sql, classes, strict=True):
        assert pii.scrub_text(text) == expected, text
        assert _placeholders(scrubbed) == expected, text
        assert cls == pii.detect_class(text) == re.findall(r"<(\w+)>", expected)[0], text


def test_decimals_versions_and_lists_of_ids_stay() -> None:
    assert pii_detect.classify(KEPT) == [None] * len(KEPT)
    assert pii_detect.scrub(KEPT, KEY) == KEPT
    assert [pii.detect_class(text) for text in KEPT] == [None] * len(KEPT)
    assert [pii.scrub_text(text) for text in KEPT] == KEPT


LIMITS = [
    # The second card follows '.' after a digit: a decimal's tail (pii_macros.sql).
    ("4111111111111111.5500000000000004", "<card>.5500000000000004"),
    # A number after a blank joins the last group into a run (pii_cards.sql).
    ("4111;1111;1111;1111 12/25", "4111;1111;1111;1111 12/25"),
]


def test_the_known_limits_stay_as_documented() -> None:
    sql = pii_detect.scrub([text for text, _ in LIMITS], KEY)
    for (text, expected), scrubbed in zip(LIMITS, sql, strict=True):
        assert pii.scrub_text(text) == expected, text
        assert _placeholders(scrubbed) == expected, text


_NO_HEAD_SCAN = pii.SCAN_PATTERN.replace(pii._RUN, pii._RUN_ALONE)


def _spans(text: str, scan: re.Pattern[str]) -> list[tuple[int, str, str]]:
    """pii._spans, with the scan given (and without the early exit)."""
    padded = " " + text
    found = []
    for match in scan.finditer(padded):
        after = padded[match.end() : match.end() + 2]
        pre = padded[match.start() - 1] if match.start() > 1 else ""
        for start, cls, span in pii._match_spans(match.group(), after, pre):
            found.append((match.start() + start, cls, span))
    return found


def _lists(count: int, seed: int) -> list[str]:
    """Groups of digits joined by ';' and '|' (cards among them), then what may follow a list."""
    rng = random.Random(seed)
    groups = ["4111", "1111", "5555", "4444", "2025", "123", "822463", "10005", "12", "3782"]
    groups += ["0612345678", "06", "+44", "7700", "900123", "2001"]
    groups += ["4111;1111;1111;1111", "5555|5555|5555|4444", "3782;822463;10005"]
    tails = ["", " ", ";", "|", ",", ".", "-", "_", "x", "@x.io", "::1", ":db8::1", " 0612345678"]
    tails += [" 12/25", "-5", ";-0612345678", "a@b.io", " 7700 900123", "\\t", "\u00a0"]
    values = []
    for _ in range(count):
        text = rng.choice(["", " ", "x;", "a.", "0.", "+", "(", "-"]) + rng.choice(groups)
        for _ in range(rng.randint(0, 5)):
            text += rng.choice([";", ";", "|", "|", ",", " ", "    ", "-"]) + rng.choice(groups)
        values.append(text + rng.choice(tails) + rng.choice(["", " end", ";7", ",7"]))
    return values


def test_a_list_head_hides_nothing_that_follows_it() -> None:
    """With or without list heads in the scan, the same spans, but the cards split by ';' or
    '|' that stand alone."""
    values = _lists(20000, seed=1)
    scan = re.compile(pii.SCAN_PATTERN, re.ASCII)
    before = re.compile(_NO_HEAD_SCAN, re.ASCII)
    for value in values:
        found = _spans(value, scan)
        listed = [s for s in found if s[1] == "card" and re.search("[;|,]", s[2])]
        rest = [s for s in found if s not in listed]
        assert rest == _spans(value, before), value
        assert [s[:2] for s in found] == [(at, cls) for at, cls, _ in pii._spans(value)], value


@pytest.mark.parametrize("seed", [2, 3])
def test_the_twins_agree_on_lists_and_dotted_names(seed: int) -> None:
    rng = random.Random(seed)
    values = _lists(1500, seed=seed)
    values += [
        rng.choice(["exp", "0", "v1", "", " ", "a_b", "x-", "é"])
        + rng.choice([".", "..", ". "])
        + rng.choice(["4111111111111111", "4111 1111 1111 1111", "10.0.0.1", "0612345678"])
        + rng.choice(["", ".", " x", "-1", "::1"])
        for _ in range(1500)
    ]
    assert pii_detect.classify(values) == [pii.detect_class(v) for v in values]
    assert [_placeholders(s) for s in pii_detect.scrub(values, KEY)] == [
        pii.scrub_text(v) for v in values
    ]
