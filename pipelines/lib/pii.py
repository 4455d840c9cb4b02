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
import ipaddress
import json
import re
from collections.abc import Callable

MIN_KEY_BYTES = 32
DEV_KEY = b"telemetry-lake-development-key-DO-NOT-USE-IN-PROD"
HASHED_KEYS: frozenset[str] = frozenset({"user_id", "session_id", "user_id_prev"})
PLACEHOLDERS = ("<email>", "<phone>", "<ipv4>", "<ipv6>", "<card>", "<iban>")

_KEY_ID_MESSAGE = b"telemetry-lake/key-id"
_SHA256_BLOCK_BYTES = 64


class PiiKeyError(ValueError):
    """The PII key is missing or too weak to make the hashes unguessable."""


def validate_key(secret: bytes, *, source: str = "TELEMETRY_PII_KEY") -> bytes:
    if len(secret) < MIN_KEY_BYTES:
        raise PiiKeyError(
            f"{source} must be at least {MIN_KEY_BYTES} bytes (got {len(secret)}); generate one "
            "with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return secret


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

_EMAIL_RE = re.compile(
    # The lookbehind anchors the local part at a word start, keeping the scan linear per word.
    r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# Upper case only: lower-case hex ids would otherwise pass the 1-in-97 check now and then.
# Spaces are allowed only between groups of four, as IBANs are printed.
_IBAN_RE = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)")
# Leading digit 2-6: payment cards live there (ISO/IEC 7812), whereas epoch-ms/us timestamps start
# with 1 until 2033. The lookarounds keep the fraction of a float and "+<phone>" out.
_CARD_RE = re.compile(r"(?<![\d+])(?<!\d\.)[2-6](?:[ -]?\d){12,18}(?!\.?\d)")
# A cheap superset (two colons, hex, optional dotted tail for ::ffff:1.2.3.4); ipaddress decides.
_IPV6_CANDIDATE_RE = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]+(?:\.\d{1,3}){0,3}(?!\w)"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE = re.compile(rf"(?<!\d)(?<!\d\.){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)")
_PHONE_RE = re.compile(
    # International: "+" then 8-15 digits in total, loosely separated.
    r"(?<![\w+])\+\d(?:[ .()-]{0,2}\d){7,14}"
    # National: separators are required, so bare digit runs (ids, timestamps) never match; the
    # final group of four keeps thousands-grouped numbers like 12.345.678 out.
    r"|(?<![\w.])(?:\(\d{2,5}\) ?|\d{2,5}[ .-])\d{3,4}[ .-]\d{4}(?!\w|[.-]\d)"
)
_HAS_DIGIT_RE = re.compile(r"\d")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card_ok(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _checked(placeholder: str, is_valid: Callable[[str], bool]) -> Callable[[re.Match[str]], str]:
    """Build a re.sub callback that only replaces candidates passing a checksum.

    A greedy match can swallow a following group ("... 7034 EUR", "... 1111 12"), so on failure
    the trailing separator-delimited groups are dropped one at a time before giving up.
    """

    def replace(match: re.Match[str]) -> str:
        text = match.group()
        candidate = text
        while not is_valid(candidate):
            cut = max(candidate.rfind(" "), candidate.rfind("-"))
            if cut <= 0:
                return text
            candidate = candidate[:cut]
        return placeholder + text[len(candidate) :]

    return replace


_replace_iban = _checked("<iban>", _iban_ok)
_replace_card = _checked("<card>", _card_ok)


def _replace_ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return match.group()
    return "<ipv6>"


def scrub_text(text: str) -> str:
    """Replace e-mails, IBANs, cards, IPs and phone numbers in free text with typed placeholders.

    The order matters: e-mails first (they may contain digits), checksummed numbers before IPs and
    phones so a card is not half-eaten as a phone, and IPs before phones for the same reason.
    IPv6 runs early only so that the digit-free shortcut below cannot skip "fe::1"; its
    colon-separated groups of at most four characters cannot overlap an IBAN or a card.
    """
    # Cheap membership tests skip whole passes; most messages hold no '@', ':' or even a digit.
    if "@" in text:
        text = _EMAIL_RE.sub("<email>", text)
    if ":" in text:
        text = _IPV6_CANDIDATE_RE.sub(_replace_ipv6, text)
    if _HAS_DIGIT_RE.search(text) is None:
        return text
    text = _IBAN_RE.sub(_replace_iban, text)
    text = _CARD_RE.sub(_replace_card, text)
    text = _IPV4_RE.sub("<ipv4>", text)
    return _PHONE_RE.sub("<phone>", text)


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


# --- quarantined lines ---------------------------------------------------------------------------

# Finds `key: value` pairs in text that is not (or not only) valid JSON. The value group always
# ends the match, so a replacement keeps the key and the opening quote for readability.
_KEY_VALUE_RE = re.compile(
    # The key, quoted with " or ' and possibly backslash-escaped (JSON embedded in a string).
    r"(?P<quote>\\*[\"'])(?P<key>[^\"'\\]{1,256})(?P=quote)\s*:\s*"
    r"(?:"
    # Escaped-quote value of embedded JSON: stop at the next backslash, the escaped closing quote.
    r'\\+"(?P<escaped>[^"\\]*)'
    # Quoted values run to the closing quote or to the end of a truncated line; "\\.?" lets a
    # dangling backslash at the very end still belong to the value.
    r'|"(?P<double>[^"\\]*(?:\\.?[^"\\]*)*)'
    r"|'(?P<single>[^'\\]*(?:\\.?[^'\\]*)*)"
    # A flat container as the value: hash all of it rather than guess which part identifies.
    r"|(?P<container>[\[{][^\[\]{}]*[\]}]?)"
    # Numbers and other bare tokens; null is not an identifier and stays, as in parsed lines.
    r"""|(?!null\b)(?P<bare>[^\s,;:{}\[\]"'\\]+)"""
    r")",
    re.DOTALL,
)


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _redact_text(text: str, secret: bytes, kept: frozenset[str]) -> str:
    """Redact by pattern: the value of a key in ``kept`` is kept (scrubbed; a container's own
    pairs redacted in turn), any other key's value is hashed, and everything between is scrubbed.

    Hashes are emitted verbatim rather than scrubbed afterwards: a 64-hex digest sometimes holds a
    Luhn-valid digit run, and a scrubbed hash would no longer match the parsed-line hash.
    """
    parts: list[str] = []
    position = 0
    for match in _KEY_VALUE_RE.finditer(text):
        value = match.lastgroup
        assert value is not None  # every alternative of the value is a named group
        start = match.start(value)
        parts.append(scrub_text(text[position:start]))
        if match.group("key") in kept and match.group("key") not in HASHED_KEYS:
            parts.append(_redact_text(match.group(value), secret, kept))
        else:
            parts.append(hmac_hex(secret, match.group(value)))
        position = match.end()
    parts.append(scrub_text(text[position:]))
    return "".join(parts)


def _hash_identifier(value: object, secret: bytes) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return hmac_hex(secret, value)
    return hmac_hex(secret, json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _redact_json(value: object, secret: bytes, kept: frozenset[str]) -> object:
    if isinstance(value, str):
        # Not just scrub_text: strings often carry embedded JSON with identifiers of their own.
        return _redact_text(value, secret, kept)
    if isinstance(value, list):
        return [_redact_json(item, secret, kept) for item in value]
    if isinstance(value, dict):
        return {
            _redact_text(key, secret, kept): (
                _redact_json(item, secret, kept)
                if key in kept and key not in HASHED_KEYS
                else _hash_identifier(item, secret)
            )
            for key, item in value.items()
        }
    return value


def redact_line(text: str, secret: bytes, kept: frozenset[str]) -> str:
    """Make a quarantined raw line safe to keep: identifiers hashed, free-text PII scrubbed.

    ``kept`` names the fields whose values are kept (scrubbed): the schemas' fields that are not
    hashed. The value under any other key is hashed like an identifier, since a key the schemas do
    not know (``usr_id``, a typo) may hold one. A line that parses as JSON is redacted
    structurally and re-serialised compactly; anything else (truncated, single-quoted, garbage) is
    redacted by pattern, keeping its shape visible.
    """
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
        # allow_nan=False: 1e400 parses to inf, which must not come back out as invalid JSON.
        return json.dumps(
            _redact_json(parsed, secret, kept),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (ValueError, RecursionError):
        # RecursionError: absurdly deep nesting is garbage too, and patterns handle it flat.
        return _redact_text(text, secret, kept)
