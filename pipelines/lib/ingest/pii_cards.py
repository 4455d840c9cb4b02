"""Payment cards for the PII detector's Python twin (pipelines/lib/ingest/pii.py): how a card is
printed,
its check, a card split by a list delimiter, and a card after a name's '.'. The SQL twin is
sql/ingest/pii_cards.sql, with the same patterns and rules.

* A card has 13-19 digits, passes Luhn and starts with 2-6, printed as in CARD.
* ';', '|' and ',' delimit lists of ids, so they end a run. A card whose groups one of them
  splits throughout (4111;1111;1111;1111, 4111|1111|1111|1111, 4111,1111,1111,1111) is met by
  the scan as a list head (LIST_HEAD: a group of four, then up to three groups, each after a
  delimiter, and a delimiter) before a run or an e-mail or IPv6 address. The whole match is a
  card when it is printed as one (LISTED_CARD: one delimiter throughout, groups as cards are
  grouped), passes Luhn and is in no longer list: no delimiter after a digit before it, no
  delimiter and a digit after it (a lone delimiter, card=4111;1111;1111;1111; or a table's
  |4111|1111|1111|1111|, is no list). Else the head holds nothing (its groups are too short for
  a value) and what follows its last delimiter is taken apart as when the scan matched it alone
  (``list_cut``). Known limit: a blank or separator and a number after it join its last group
  into a run, and the card stays (4111;1111;1111;1111 12/25).
* '.' after a digit makes a decimal (0.4111..., 1.4111...): no card starts there. After an ASCII
  letter, or at the start of a value, it is part of a name (exp.4111...): a card may start there,
  but no phone or IPv4 address (x.10.0.0.1), so the run gets WORD_DOT as what stands before it.
"""

from __future__ import annotations

import re

# Groups separated by one to three blanks, '.', '-', '/', '_' or ':' (4111/1111/1111/1111,
# 4111 - 1111 - 1111 - 1111), or by four blanks or more.
_SEP = r"(?:(?: |[./:_-]){1,3}| {4,})"
CARD = (
    r"[2-6][0-9]{12,18}"
    rf"|[2-6][0-9]{{3}}(?:{_SEP}[0-9]{{3,4}}){{2,3}}(?:{_SEP}[0-9]{{1,4}})?"
    rf"|[2-6][0-9]{{3}}{_SEP}[0-9]{{6}}{_SEP}[0-9]{{4,5}}"
)
LIST_HEAD = r"[2-6][0-9]{3}(?:[;|,][0-9]{3,6}){1,3}[;|,]"
# As CARD groups a card (4-4-4-4, 4-4-4-4-3, 4-3-3-3, 4-6-5), with ';', '|' or ',' throughout.
LISTED_CARD = (
    r"[2-6][0-9]{3}(?:(?:;[0-9]{3,4}){2,3}(?:;[0-9]{1,4})?|;[0-9]{6};[0-9]{4,5})"
    r"|[2-6][0-9]{3}(?:(?:\|[0-9]{3,4}){2,3}(?:\|[0-9]{1,4})?|\|[0-9]{6}\|[0-9]{4,5})"
    r"|[2-6][0-9]{3}(?:(?:,[0-9]{3,4}){2,3}(?:,[0-9]{1,4})?|,[0-9]{6},[0-9]{4,5})"
)
# What stands before a run after a '.' that follows a letter or starts the value: '.' for every
# class but a card (no token of a run is "a.").
WORD_DOT = "a."

_CARD_DIGITS = range(13, 20)
_NOT_DIGIT_RE = re.compile(r"[^0-9]")
_LIST_RE = re.compile(r"[0-9]+[;|,]")
_HEAD_RE = re.compile(r"(?:[0-9]+[;|,])+")
_LISTED_CARD_RE = re.compile(LISTED_CARD)
_LIST_GOES_ON_RE = re.compile("[;|,][0-9\uff10-\uff19]|-?[A-Za-z0-9\uff10-\uff19]")
_DIGIT_RE = re.compile("[0-9\uff10-\uff19]")
_WORD_OR_START_RE = re.compile("[A-Za-z]?")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_ok(candidate: str) -> bool:
    digits = _NOT_DIGIT_RE.sub("", candidate)
    return len(digits) in _CARD_DIGITS and luhn_ok(digits)


def list_cut(body: str, before: str, after: str, pre: str) -> int | None:
    """For the candidate ``body`` of a match of the scan: None when it starts with no list head;
    0 when it is a card as a whole (LISTED_CARD, Luhn, no '.' before it, no delimiter after a
    digit (``pre``: the character before ``before``) before it, nothing after it that goes on
    with a list (a delimiter and a digit) or glues it to a word); else the length of its list
    head, the characters before the last delimiter included."""
    if _LIST_RE.match(body) is None:
        return None
    if (
        _LISTED_CARD_RE.fullmatch(body)
        and before != "."
        and not (before in (";", "|", ",") and _DIGIT_RE.fullmatch(pre))
        and not _LIST_GOES_ON_RE.match(after)
        and card_ok(body)
    ):
        return 0
    head = _HEAD_RE.match(body)
    assert head is not None  # it starts with a group and a delimiter
    return head.end()


def prefix_char(prefix: str, pre: str) -> str:
    """What stands before a run (or its windows that start with it) when ``prefix`` (one
    character) stands before its match and ``pre`` before that ('' at the start of the value):
    WORD_DOT for a '.' after an ASCII letter or at the start."""
    return WORD_DOT if prefix == "." and _WORD_OR_START_RE.fullmatch(pre) else prefix
