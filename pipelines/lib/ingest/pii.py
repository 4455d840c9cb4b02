"""PII handling shared by every stage: the keyed hash for identifiers and the free-text scrubber.

Identifiers (``HASHED_KEYS``) are pseudonymised with HMAC-SHA256 under a secret key, so the same
user joins across tables and days but cannot be recovered without the key. Free text is scrubbed
with typed placeholders so analysts still see *what kind* of thing was there.

Pure Python on purpose: the same rules run in unit tests, in Dagster assets and (through
``hmac_pads``) inside DuckDB SQL, and they must agree byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable, Iterator

from pipelines.lib.ingest.pii_cards import CARD as _CARD
from pipelines.lib.ingest.pii_cards import (
    LIST_HEAD,
    LISTED_CARD,
    WORD_DOT,
    card_ok,
    list_cut,
    prefix_char,
)

MIN_KEY_BYTES = 32
DEV_KEY = b"telemetry-lake-development-key-DO-NOT-USE-IN-PROD"
HASHED_KEYS: frozenset[str] = frozenset({"user_id", "session_id", "user_id_prev"})
PLACEHOLDERS = ("<email>", "<phone>", "<ipv4>", "<ipv6>", "<card>", "<iban>", "<long_run>")
# A run of numbers (and separators) longer than this is one span, class long_run, never taken
# apart into windows: that costs time growing faster than its length, and no value is this long
# (the SQL twin, pii_wholes in sql/ingest/pii_macros_runs.sql, says 256 too).
LONG_RUN_CHARS = 256

_KEY_ID_MESSAGE = b"telemetry-lake/key-id"
_SHA256_BLOCK_BYTES = 64


class PiiKeyError(ValueError):
    """The PII key is missing or too weak to make the hashes unguessable."""


MIN_KEY_DISTINCT_BYTES = 8  # a hex secret has up to 16, a random byte string about 32
_GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"


def validate_key(
    secret: bytes, *, source: str = "TELEMETRY_PII_KEY", production: bool = False
) -> bytes:
    """The one place that decides whether a secret may hash identifiers; ``source`` names the
    variable (and key) it came from. The public ``DEV_KEY`` is refused in production only."""
    distinct = len(set(secret))
    if len(secret) < MIN_KEY_BYTES:
        problem = f"must be at least {MIN_KEY_BYTES} bytes (got {len(secret)})"
    elif not secret.strip():
        problem = "is only whitespace"
    elif distinct == 1:
        problem = f"is one byte repeated {len(secret)} times"
    elif distinct < MIN_KEY_DISTINCT_BYTES:
        problem = (
            f"has only {distinct} distinct bytes (at least {MIN_KEY_DISTINCT_BYTES}): it is "
            "guessable"
        )
    elif production and DEV_KEY in secret:
        # The public key with a suffix or prefix is as guessable as the key itself.
        problem = (
            "is or contains the public development key and TELEMETRY_ENV=production: set a secret "
            "of your own"
        )
    else:
        return secret
    raise PiiKeyError(f"{source} {problem}; {_GENERATE}")


def key_id(secret: bytes) -> str:
    """Public fingerprint recorded next to hashed data, so a key rotation is detectable."""
    return hmac.new(secret, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:12]


def hmac_hex(secret: bytes, value: str) -> str:
    return hmac.digest(secret, value.encode("utf-8"), "sha256").hex()


def hmac_pads(secret: bytes) -> tuple[bytes, bytes]:
    """RFC 2104 inner/outer pads, so SQL without an HMAC function can compute ``hmac_hex``.

    ``sha256(outer || sha256(inner || msg))`` equals ``HMAC-SHA256(secret, msg)``.
    """
    key = hashlib.sha256(secret).digest() if len(secret) > _SHA256_BLOCK_BYTES else secret
    key = key.ljust(_SHA256_BLOCK_BYTES, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


# --- free-text scrubbing -------------------------------------------------------------------------
#
# The Python twin of the SQL detector (sql/ingest/pii_macros.sql, where the decisions are written
# down, pii_macros_runs.sql and pii_cards.sql, whose twin is pii_cards.py): the same patterns, a
# match taken apart the same way, the same windows and checks, so both find the same spans;
# tests/ingest/test_pii_detect.py holds them to it.
# The patterns are written for RE2 (no lookaround, ASCII classes, since RE2's \w and \d are ASCII
# and Python's are not; other characters appear literally). A scan finds each candidate with what
# stands before it, on the text with a leading space; phones, cards, IBANs and IPv4s are found in
# runs (numbers and IBAN groups, then e-mails and IPv6 addresses too, joined by separators; one
# match takes a whole run, so that no value hides across two matches), by trying the windows of
# a run between separators.

# A JSON escape, consumed whole so that no span starts inside one.
_JSON_ESCAPE = r"\\(?:u[0-9A-Fa-f]{4}|[^u])"
# A blank between the groups of a number: space, tab, no-break space, the other Unicode spaces,
# or its JSON escape, so that a number printed with any of them is found, in JSON text too.
_SPACE = (
    "(?:[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
    r"|\\(?:t|u(?:00(?:09|20|[Aa]0)|1680|20(?:0[0-9Aa]|2[Ff]|5[Ff])|3000)))"
)
# Fullwidth digits (U+FF10-FF19) are digits: a window is checked with them made ASCII.
_FULLWIDTH_DIGITS = "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"
_FULLWIDTH = "\uff10-\uff19"
_DIGIT = f"[0-9{_FULLWIDTH}]"
# Letters beyond ASCII in an e-mail: Latin, Greek and Cyrillic anywhere (josé@, иван@); kana, CJK
# and Hangul in the labels of a domain only (an IDN such as 例え.jp), since those scripts are
# written without spaces and would take the text around the address along.
_EMAIL_LETTERS = "\u00c0-\u024f\u0370-\u04ff"
_IDN_LETTERS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
# What may stand before a span: a JSON escape, a character other than a letter, a digit, '-' or
# '\', or '-' after such a character (a '-' between two words joins them). '_' separates.
_PREFIX = rf"{_JSON_ESCAPE}|[^\\A-Za-z0-9-]|[^\\A-Za-z0-9]-"
# What may stand before an e-mail: a JSON escape, or a character its local part cannot hold.
_EMAIL_PREFIX = rf"{_JSON_ESCAPE}|[^\\A-Za-z0-9._%+{_EMAIL_LETTERS}-]"
# An e-mail: a local part (or a quoted one, "john doe"@, also JSON-escaped, \"john doe\"@, of
# printable ASCII but no ',', ':', '@', '\' or bracket, so that it never spans the structure of a
# JSON text), '@' (or %40, URL-encoded: ?u=alice%40example.com), a domain; addresses glued by a
# character a local part may hold are one span (a@x.io_b@y.io).
# An e-mail's '@', maybe escaped: URL-encoded, HTML (&#64;, &#x40;) or fullwidth.
_AT = "(?:@|%40|&#64;|&#[xX]40;|\uff20)"
_QUOTED_CHARS = r"[ !#-+\--9;-?A-Z^-z|~]{1,64}"
_LABEL = f"[A-Za-z0-9{_EMAIL_LETTERS}{_IDN_LETTERS}-]+"
_ADDRESS = (
    rf'(?:"{_QUOTED_CHARS}"|\\"{_QUOTED_CHARS}\\"|[A-Za-z0-9._%+{_EMAIL_LETTERS}-]+)'
    rf"{_AT}{_LABEL}(?:\.{_LABEL})*\.(?:xn--[A-Za-z0-9-]+|[A-Za-z{_EMAIL_LETTERS}]{{2,}})"
)
_EMAIL = rf"{_ADDRESS}(?:[._%+-]{_ADDRESS})*"
_IPV6 = (
    r"[0-9A-Fa-f:]*::[0-9A-Fa-f:]*(?:\.[0-9]{1,3}){0,3}"
    r"|(?:[0-9A-Fa-f]{1,4}:){6,7}[0-9A-Fa-f]*(?:\.[0-9]{1,3}){0,3}"
)
# The shapes a window must have, its blanks made ' ' (each ' ' stands outside a character class,
# so that replacing it by _SPACE gives the shape in raw text). IBAN groups: blanks or ._-.
_IBAN = r"[A-Za-z]{2}[0-9]{2}(?:(?: |[._-])?[A-Za-z0-9]{4}){2,7}(?:(?: |[._-])?[A-Za-z0-9]{1,4})?"
_PHONE = (
    r"\+[0-9](?:(?: |[.()/-]){0,2}[0-9]){7,14}"  # +<country> <number>: 8-15 digits (E.164)
    r"|00[1-9](?:(?: |[.()/-]){0,2}[0-9]){7,14}"  # 00<country> <number>
    r"|\([0-9]{2,5}\) ?[0-9]{2,5}(?:(?: |[.-])?[0-9]{2,5})?"  # (area) number
    r"|[2-9][0-9]{2}(?:-[0-9]{3}-| [0-9]{3} |\.[0-9]{3}\.|/[0-9]{3}-)[0-9]{4}"  # NANP
    r"|0[1-9](?:(?: [0-9]{2}){4}|(?:[./-][0-9]{2}){4})"  # 06 12 34 56 78
    r"|[6-9][0-9]{2} [0-9]{2} [0-9]{2} [0-9]{2}"  # 612 34 56 78 (Spain)
    r"|[6-9][0-9] [0-9]{3} [0-9]{2} [0-9]{2}"  # 91 336 32 27 (Spain)
    r"|[6-9][0-9]{4} [0-9]{5}"  # 98765 43210 (India)
    r"|[1-9][0-9] 9?[0-9]{4}(?: |-)[0-9]{4}"  # 11 91234-5678 (Brazil)
    r"|3[0-9]{2} [0-9]{6,7}"  # 333 1234567 (Italian mobile)
    r"|1[3-9][0-9](?: [0-9]{4} |-[0-9]{4}-)[0-9]{4}"  # 138 0013 8000 (Chinese mobile)
    r"|8 ?\([0-9]{3,5}\) ?[0-9]{1,3}(?:-[0-9]{2}){2}"  # 8 (912) 345-67-89 (Russia, trunk 8)
    # 8 912 345 67 89, 8-912-345-67-89
    r"|8(?: [0-9]{3} [0-9]{3}(?: [0-9]{2}){2}|-[0-9]{3}-[0-9]{3}(?:-[0-9]{2}){2})"
    # 020 7946 0958, 03-1234-5678, 030/901820
    r"|0[1-9][0-9]{0,4}(?:(?: [0-9]{2,8}){1,2}|(?:-[0-9]{2,8}){1,2}|(?:/[0-9]{2,8}){1,2})"
    r"|0[1-9][0-9]{8,9}"  # a bare run is a phone only with a trunk 0
)
_IPV4 = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
# Cards (_CARD, LISTED_CARD, LIST_HEAD): pipelines/lib/ingest/pii_cards.py.
# A run: numbers (maybe after '+'), IBANs (letters allowed), e-mails and IPv6 addresses, joined
# by one to three separators (or 4+ blanks) or by '_', maybe after '+' or an area code in ();
# greedy, so that a value glued to the next one is in the same run. Past its first number a run
# goes on only over an e-mail, an IPv6 address or a group that ends a word (\b after an ASCII
# character, \B after a fullwidth digit: ASCII as in RE2, so run with re.ASCII) or that '_'
# ends, so that it never takes the start of the next word ("42 8fbc::1", "7 5a@b.io"); an IBAN
# always ends a word.
# One to three separators, or four blanks or more (4111    1111    1111    1111).
_SEPARATOR = rf"(?:(?:{_SPACE}|[.()/:-]){{1,3}}|(?:{_SPACE}){{4,}})"
# An IBAN in a run: two letters, two digits, then any number of groups in raw text, so that two
# IBANs in a row ("BE68 5390 0754 7034 NL91 ABNA 0417 1643 00") are one piece, which the windows
# of the run take apart.
_IBAN_PIECE = (
    rf"[A-Za-z]{{2}}[0-9]{{2}}(?:(?:{_SPACE}|[._-])?[A-Za-z0-9]{{4}})*"
    rf"(?:(?:{_SPACE}|[._-])?[A-Za-z0-9]{{1,4}})?"
)
_RUN_PIECE = rf"{_DIGIT}+|{_IBAN_PIECE}"
_RUN_PIECE_UNDERSCORE = rf"\+?(?:{_RUN_PIECE})_"
_RUN_PIECE_END = rf"\+?{_DIGIT}*(?:[0-9]\b|[{_FULLWIDTH}]\B)|(?:{_IBAN_PIECE})\b"
_RUN_PIECE_FIRST = rf"{_DIGIT}+|(?:{_IBAN_PIECE})\b"
_RUN_ALONE = (
    rf"(?:(?:{_RUN_PIECE_UNDERSCORE})+(?:{_RUN_PIECE_END})?|\+?(?:{_RUN_PIECE_FIRST})"
    rf"|\({_DIGIT}+\)(?:{_RUN_PIECE_FIRST})?)(?:{_SEPARATOR}"
    rf"(?:(?:{_EMAIL})|(?:{_IPV6})\b|(?:{_RUN_PIECE_UNDERSCORE})+(?:{_RUN_PIECE_END})?"
    rf"|{_RUN_PIECE_END}))*"
)
# Maybe after a list head (a card split by ';' or '|', pii_cards.py), then what the scan would
# match after its last delimiter: an e-mail, an IPv6 address or a run.
_RUN = rf"(?:{LIST_HEAD}(?:(?:{_EMAIL})|(?:{_IPV6}))|(?:{LIST_HEAD})?(?:{_RUN_ALONE}))"
# The tokens of a run: e-mails, IPv6 addresses, blanks, groups of letters and digits, single
# separators.
RUN_TOKEN_PATTERN = rf"(?:{_EMAIL})|(?:{_IPV6})|{_SPACE}|[A-Za-z0-9{_FULLWIDTH}]+|."
# The scan: an e-mail (after no local-part character, so that it starts where its local part
# does, and Python's backtracking engine stays linear), an IPv6 or a run, each after what may
# stand before it; then a lone JSON escape (so that escapes are consumed in order from the left).
SCAN_PATTERN = (
    rf"(?:{_EMAIL_PREFIX})(?:{_EMAIL})"
    rf"|(?:{_PREFIX})(?:(?:{_IPV6})|(?:{_RUN}))|{_JSON_ESCAPE}"
)
# The early exit: a span the checks accept has its class's shape, before no letter or digit and
# after what may stand before a span (a quoted e-mail in a run also after '.' or '-'), or (a
# phone, an IPv4 or a card) inside a run after '-' glued to a number, then before no '-'. The shapes
# are matched with plain spaces: a blank of another kind (or its JSON escape) or a fullwidth digit
# always goes on. A value without a match holds no PII.
_SHAPES = "|".join(f"(?:{shape})" for shape in (_IPV6, _IBAN, _PHONE, _IPV4, _CARD, LISTED_CARD))
_DIGIT_SHAPES = "|".join(f"(?:{shape})" for shape in (_PHONE, _IPV4, _CARD))
CANDIDATE_PATTERN = (
    rf"(?:^|{_EMAIL_PREFIX})(?:{_ADDRESS})"
    r'|[.-]["\\]'
    rf"|(?:^-?|{_PREFIX})(?:{_SHAPES})(?:[^A-Za-z0-9]|$)"
    rf"|[0-9{_FULLWIDTH}]-(?:{_DIGIT_SHAPES})(?:[^A-Za-z0-9-]|$)"
    "|[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000" + _FULLWIDTH + "]"
    r"|\\(?:t|u(?:00(?:09|20|[Aa]0)|1680|20(?:0[0-9Aa]|2[Ff]|5[Ff])|3000))"
)
_SCAN_RE = re.compile(SCAN_PATTERN, re.ASCII)
_MAY_HOLD_PII_RE = re.compile(f"[0-9@:\uff20{_FULLWIDTH}]")
_CANDIDATE_RE = re.compile(CANDIDATE_PATTERN)
_RUN_TOKEN_RE = re.compile(RUN_TOKEN_PATTERN)
_EMAIL_PREFIX_CHAR_RE = re.compile(f"[^\\\\A-Za-z0-9._%+{_EMAIL_LETTERS}-]")
# The start of an e-mail: a quote, or local-part characters up to '@'.
_EMAIL_START_RE = re.compile(f'["\\\\]|[A-Za-z0-9._%+{_EMAIL_LETTERS}-]+{_AT}')
# What a run glued to a word at its end keeps: all before its last group.
_UNGLUED_RE = re.compile(f"(.*?)[^A-Za-z0-9{_FULLWIDTH}]*[A-Za-z0-9{_FULLWIDTH}]+")
_SPACE_RE = re.compile(_SPACE)
_TO_ASCII_DIGITS = str.maketrans(_FULLWIDTH_DIGITS, "0123456789")

# Taking a match apart: which alternative of the scan matched, from its first characters.
_UNICODE_ESCAPE_RE = re.compile(r"\\u[0-9A-Fa-f]{4}")
_IPV6_START_RE = re.compile(r"[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{1,4}:){6}")
_IPV6_FULL_RE = re.compile(f"(?:{_IPV6})")
_WINDOW_RES = {
    "iban": re.compile(_IBAN),
    "phone": re.compile(f"(?:{_PHONE})"),
    "ipv4": re.compile(_IPV4),
    "card": re.compile(f"(?:{_CARD})"),
}
# What a class refuses right before a span, beyond what _PREFIX refuses: 0.4111... is a decimal,
# +<digits> an international phone, x.10.0.0.1 part of a name (WORD_DOT: a '.' after a letter).
_NOT_AFTER = {
    "ipv6": (":", ".", WORD_DOT),
    "ipv4": (".", WORD_DOT),
    "phone": (".", "+", WORD_DOT),
    "card": (".",),
}
# What follows a candidate and glues it to a word: a letter or digit, or '-' (or for an IPv6 ':'
# or '.') and one.
_GLUED_RE = re.compile(f"-?[A-Za-z0-9{_FULLWIDTH}]")
_GLUED_IPV6_RE = re.compile(f"[:.-]?[A-Za-z0-9{_FULLWIDTH}]")
_DOT_WORD_RE = re.compile(f"\\.[A-Za-z0-9{_FULLWIDTH}]")
# Four groups of four digits, one separator throughout: printed like a card.
_FOUR_FOURS_RE = re.compile(r"[0-9]{4}(?:(?: [0-9]{4}){3}|(?:-[0-9]{4}){3}|(?:\.[0-9]{4}){3})")
# A window holds at most this many tokens (a phone of 15 digits, two separators between each).
MAX_WINDOW_TOKENS = 48

# Four octets 0-255 without leading zeros.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_OK_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IPV6_GROUPS_RE = re.compile(
    r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?:::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?)?"
)
_HEX_GROUP_RE = re.compile(r"[0-9A-Fa-f]+")
_HAS_DIGIT_RE = re.compile(r"[0-9]")
_NOT_DIGIT_RE = re.compile(r"[^0-9]")
_HAS_LETTER_RE = re.compile(r"[A-Za-z]")
_ALNUM_START_RE = re.compile(f"[A-Za-z0-9{_FULLWIDTH}]")
_IBAN_COMPACT_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
_IBAN_SEPARATORS_RE = re.compile(r"[ ._-]")
# ISO 13616: the countries that use IBANs, each with its one length ("GB22"). Both must match, so
# a hex digest or a product code passes mod 97 (1 in 97) in vain.
IBAN_LENGTHS = (
    " AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27"
    " DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28"
    " IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22"
    " MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24"
    " SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30 "
)


def _phone_ok(candidate: str) -> bool:
    """``candidate``: a window of a phone's shape (it ends with a digit)."""
    # "+1234567.89" is a signed decimal; a dotted phone has several dots.
    if candidate.count(".") == 1:
        return False
    digits = len(_NOT_DIGIT_RE.sub("", candidate))
    if candidate.startswith("+"):
        return 8 <= digits <= 15
    if candidate.startswith("00"):
        return 10 <= digits <= 17
    return 9 <= digits <= 12


def _iban_ok(candidate: str) -> bool:
    compact = _IBAN_SEPARATORS_RE.sub("", candidate).upper()
    if f" {compact[:2]}{len(compact)} " not in IBAN_LENGTHS:
        return False
    if not _IBAN_COMPACT_RE.fullmatch(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _ipv4_ok(candidate: str) -> bool:
    return _IPV4_OK_RE.fullmatch(candidate) is not None


def _ipv6_ok(address: str) -> bool:
    """Groups of 1-4 hex digits and at most one '::' (an IPv4 tail counting as two groups); eight
    groups, or at most seven with '::' and then a digit ('a::b', 'Foo::bar' are identifiers)."""
    hexed = address
    if "." in address:
        head, _, ipv4 = address.rpartition(":")
        if not _ipv4_ok(ipv4):
            return False
        hexed = head + ":0:0"
    if not _IPV6_GROUPS_RE.fullmatch(hexed):
        return False
    groups = len(_HEX_GROUP_RE.findall(hexed))
    if "::" in hexed:
        return groups <= 7 and _HAS_DIGIT_RE.search(address) is not None
    return groups == 8


_WINDOW_CHECKS: dict[str, Callable[[str], bool]] = {
    "iban": _iban_ok,
    "phone": _phone_ok,
    "ipv4": _ipv4_ok,
    "card": card_ok,
}


def _has_at(text: str) -> bool:
    """Whether ``text`` holds an e-mail's '@', maybe escaped (_AT: alice%40example.com)."""
    return "@" in text or "%40" in text or "&#" in text or "\uff20" in text


def _plain(window: str) -> str:
    """A window as it is checked: blanks made ' ', fullwidth digits ASCII."""
    return _SPACE_RE.sub(" ", window.translate(_TO_ASCII_DIGITS))


def _window_class(plain: str, before: str, after: str, last: bool, single: bool) -> str | None:
    """The class of a window of a run, ``plain`` its plain form (_plain): an e-mail, an IPv6
    address, or the first of iban, phone, ipv4, card whose shape and check it passes; or None.
    ``before``: the separator or prefix before it (or WORD_DOT, checked as _NOT_AFTER says);
    ``after``: the separator after it, or (``last``) the two characters after the run, which
    must not glue it to a word; ``single``: it is one token (a token with '@' is an e-mail,
    whatever follows it)."""
    if _has_at(plain):
        return "email" if single and len(plain) > 1 else None
    if last and _GLUED_RE.match(after):
        return None
    if ":" in plain:
        # No IPv6 after ':', '.', '-' or a word (a token "::1" right after a group: "FE80::1" is
        # the end of a longer word), nor before '-' or (after the run) ':' or '.' and a word.
        glued = _GLUED_IPV6_RE.match(after) if last else after == "-"
        glued = glued or _ALNUM_START_RE.match(before) is not None
        ok = before not in (":", ".", "-") and not glued and _IPV6_FULL_RE.fullmatch(plain)
        if ok and _ipv6_ok(plain):
            return "ipv6"
        # Else maybe a card grouped with ':' (4111:1111:1111:1111).
    if len(plain) < 7:
        return None  # shorter than any other value ("0.0.0.0")
    for pii_class in ("iban", "phone", "ipv4", "card"):
        if before in _NOT_AFTER.get(pii_class, ()):
            continue
        if (
            pii_class == "iban"
            and after[:1] in ("-", ".", "_")
            and (not last or _ALNUM_START_RE.match(after[1:2]) is not None)
            and _IBAN_SEPARATORS_RE.search(plain.replace(" ", ""))
        ):
            continue  # an IBAN grouped by '-', '.' or '_' is followed by none (ab12-cdef-...)
        if pii_class == "ipv4" and (_DOT_WORD_RE.match(after) if last else after == "."):
            continue  # 1.2.3.4.5 is not an address
        if _WINDOW_RES[pii_class].fullmatch(plain) and _WINDOW_CHECKS[pii_class](plain):
            return pii_class
    return None


def _run_spans(body: str, before: str, after: str) -> list[tuple[int, str, str]]:
    """(start, span, class) of the PII in a run: the whole run when it is one value; nothing when
    it is printed like a card (four groups of four digits) but is none; else every window that is
    one value, windows that share a token merged into one span under the class of the first (the
    leftmost, the longest there). A window spans at most MAX_WINDOW_TOKENS tokens, from a group
    (or a '+' or '(' not glued to a group before it) to a group; after '-' glued to a group it
    starts only without a letter (no IBAN) and when no letter comes before it in the run, and
    ends before no '-'. A run glued to a word at its end loses its last group first."""
    if _ALNUM_START_RE.match(after) and _ALNUM_START_RE.match(body[-1:]) and not _has_at(body):
        # Glued to a word at its end: the last group belongs to that word ("...5682-4a70"). (Past
        # its first piece a run ends a word but with an e-mail, which stays.)
        unglued = _UNGLUED_RE.fullmatch(body)
        assert unglued is not None  # the body ends with a letter or digit
        body, after = unglued.group(1), (body[len(unglued.group(1)) :] + after)[:2]
    if len(body) > LONG_RUN_CHARS:
        return [(0, body, "long_run")]
    whole = _window_class(_plain(body), before, after, True, False)
    if whole is not None:
        return [(0, body, whole)]
    if _FOUR_FOURS_RE.fullmatch(_plain(body)):
        return []  # a mistyped card or a code: no phone inside
    tokens = _RUN_TOKEN_RE.findall(body)
    plains = [_plain(token) for token in tokens]
    ends = list(itertools.accumulate(len(plain) for plain in plains))  # plain length to each
    count = len(tokens)
    # Where a window may start or end: a group, an e-mail, an IPv6 address.
    alnum = [
        _ALNUM_START_RE.match(token) is not None or _has_at(token) or token.startswith("::")
        for token in tokens
    ]
    alnum_letter = [token[:1].isascii() and token[:1].isalpha() for token in tokens]
    merged: list[list] = []  # [first token, last token, class]
    for i in range(count if count > 1 else 0):
        opening = tokens[i] in ("+", "(") and i + 1 < count and alnum[i + 1]
        if not (alnum[i] or (opening and (i == 0 or not alnum[i - 1]))):
            continue
        dashed = i > 1 and tokens[i - 1] == "-" and alnum[i - 2]
        if dashed and _HAS_LETTER_RE.search("".join(tokens[: i - 1])):
            continue
        for j in range(min(count, i + MAX_WINDOW_TOKENS) - 1, i - 1, -1):
            if not alnum[j] or (i == 0 and j == count - 1):
                continue
            last = j == count - 1
            if dashed and ((after if last else tokens[j + 1]).startswith("-") or alnum_letter[i]):
                continue
            # No value is shorter than 3 characters ("::1") or longer than 45 but an e-mail.
            if not 3 <= ends[j] - (ends[i - 1] if i else 0) <= 45 and not (
                i == j and _has_at(tokens[i])
            ):
                continue
            pii_class = _window_class(
                "".join(plains[i : j + 1]),
                before if i == 0 else tokens[i - 1],
                after if last else tokens[j + 1],
                last,
                i == j,
            )
            if pii_class is None:
                continue
            if merged and i <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], j)
            else:
                merged.append([i, j, pii_class])
    return [(len("".join(tokens[:i])), "".join(tokens[i : j + 1]), c) for i, j, c in merged]


def _prefix_length(match: str) -> int:
    """The length of what stands before the candidate in a match of the scan."""
    if match.startswith("\\"):
        return 6 if _UNICODE_ESCAPE_RE.match(match) else 2
    # '-' after a character, unless a character and an e-mail that starts with '-'.
    if match.startswith("-") or (
        match[1:2] == "-"
        and not (_EMAIL_PREFIX_CHAR_RE.fullmatch(match[0]) and _EMAIL_START_RE.match(match[1:]))
    ):
        return 2
    return 1


def _rest_class(rest: str, prefix: str) -> str:
    """The scan's alternative that matched ``rest`` (the candidate) after ``prefix``: email (after
    what may stand before one, it starts like one: the scan tries it first), ipv6 (it starts like
    one) or run."""
    may_be_email = prefix.startswith("\\") or _EMAIL_PREFIX_CHAR_RE.fullmatch(prefix)
    if _has_at(rest) and may_be_email and _EMAIL_START_RE.match(rest):
        return "email"
    if _IPV6_START_RE.match(rest):
        return "ipv6"
    return "run"


def _match_spans(match: str, after: str, pre: str = "0") -> list[tuple[int, str, str]]:
    """(start in the match, class, span) of the PII in one match of the scan; ``after``: the two
    characters that follow the match, ``pre`` the one before it ('' at the start of the text)."""
    start = _prefix_length(match)
    body = match[start:]
    if not body:
        return []  # a lone JSON escape
    kind = _rest_class(body, match[:start])
    before = prefix_char(match[0] if start == 1 else "", pre)
    if kind == "email":
        return [(start, "email", body)]
    if kind == "ipv6":
        # A single trailing colon is punctuation ("connect to ::1: refused").
        span = body[:-1] if body.endswith(":") and not body.endswith("::") else body
        if before in _NOT_AFTER["ipv6"] or _GLUED_IPV6_RE.match(after):
            return []
        return [(start, "ipv6", span)] if _ipv6_ok(span) else []
    cut = list_cut(body, before, after, pre)
    if cut == 0:
        return [(start, "card", body)]
    if cut:  # what follows the last delimiter of a list head, as if matched after it alone
        cut += start - 1
        return [(cut + at, c, span) for at, c, span in _match_spans(match[cut:], after)]
    return [(start + at, c, span) for at, span, c in _run_spans(body, before, after)]


def _spans(text: str) -> Iterator[tuple[int, str, str]]:
    """(start in ``" " + text``, class, span) of each PII span in ``text``, in order."""
    # Every value holds a digit, '@' (or a fullwidth one) or ':' (cheaper to look for first).
    if _MAY_HOLD_PII_RE.search(text) is None or _CANDIDATE_RE.search(text) is None:
        return
    padded = " " + text
    for match in _SCAN_RE.finditer(padded):
        after = padded[match.end() : match.end() + 2]
        pre = padded[match.start() - 1] if match.start() > 1 else ""
        for start, pii_class, span in _match_spans(match.group(), after, pre):
            yield match.start() + start, pii_class, span


def detect_class(text: str) -> str | None:
    """The class of the first PII span in ``text`` (``email``, ``ipv4``, ``ipv6``, ``phone``,
    ``card``, ``iban``), or None: the Python twin of the SQL ``pii_class``."""
    return next((pii_class for _, pii_class, _ in _spans(text)), None)


def scrub_text(text: str) -> str:
    """Replace e-mails, IBANs, cards, IPs and phone numbers in free text with typed placeholders
    (``PLACEHOLDERS``); the spans are the SQL ``pii_scrub``'s, which writes hash tokens instead."""
    parts: list[str] = []
    position = 0
    for start, pii_class, span in _spans(text):
        parts += [text[position : start - 1], f"<{pii_class}>"]
        position = start - 1 + len(span)
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


# A JSON string literal, in the unrolled form of "(?:[^"\\]|\\.)*" (same language, fewer steps).
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _scrub_json_literal(match: re.Match[str]) -> str:
    literal = match.group()
    try:
        decoded = json.loads(literal)
    except ValueError:
        # Broken escapes in broken JSON: scrub raw; placeholders add no quotes or backslashes.
        return '"' + scrub_text(literal[1:-1]) + '"'
    scrubbed = scrub_text(decoded)
    # Untouched literals keep their original escaping, so clean input round-trips byte for byte.
    return literal if scrubbed == decoded else json.dumps(scrubbed, ensure_ascii=False)


def scrub_json_strings(json_text: str) -> str:
    """Scrub inside the string literals of a JSON text only, so valid JSON stays valid."""
    return _JSON_STRING_RE.sub(_scrub_json_literal, json_text)
