"""Unit tests for pipelines.lib.ingest.pii: keyed hashing, free-text scrubbing, quarantine
redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipelines.lib.ingest.pii import (
    DEV_KEY,
    HASHED_KEYS,
    MIN_KEY_BYTES,
    PLACEHOLDERS,
    PiiKeyError,
    hmac_hex,
    hmac_pads,
    key_id,
    scrub_json_strings,
    scrub_text,
    validate_key,
)
from pipelines.lib.ingest.pii_redact import redact_line

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
# The non-identifier keys these tests use, standing for the schemas' fields (kept_field_names()).
KEPT = frozenset({"event", "ctx", "items", "note", "message", "score", "raw", "ts", "x", "n"})
KEPT |= frozenset({"email", "a@b.com"})


def h(value: str) -> str:
    return hmac_hex(KEY, value)


def hashed(template: str, *raw_ids: str) -> str:
    """Fill each HASH in template with the hash of the next id, in order."""
    for raw_id in raw_ids:
        template = template.replace("HASH", h(raw_id), 1)
    return template


# --- keys and hashing ----------------------------------------------------------------------------


def test_constants() -> None:
    assert MIN_KEY_BYTES == 32
    assert len(DEV_KEY) >= MIN_KEY_BYTES
    assert frozenset({"user_id", "session_id", "user_id_prev"}) == HASHED_KEYS
    assert PLACEHOLDERS == (
        "<email>",
        "<phone>",
        "<ipv4>",
        "<ipv6>",
        "<card>",
        "<iban>",
        "<long_run>",
    )


def test_validate_key_refuses_short_key_and_says_what_to_set() -> None:
    with pytest.raises(PiiKeyError) as caught:
        validate_key(b"x" * 31)
    assert str(caught.value) == (
        "TELEMETRY_PII_KEY must be at least 32 bytes (got 31); generate one with: "
        "python -c 'import secrets; print(secrets.token_hex(32))'"
    )
    assert isinstance(caught.value, ValueError)


def test_validate_key_names_the_given_source_and_refuses_empty() -> None:
    with pytest.raises(PiiKeyError, match=r"^MY_KEY_FILE must be at least 32 bytes \(got 0\)"):
        validate_key(b"", source="MY_KEY_FILE")


def test_validate_key_accepts_32_varied_bytes_and_the_dev_key_outside_production() -> None:
    assert validate_key(b"0123456789abcdef" * 2) == b"0123456789abcdef" * 2
    assert validate_key(DEV_KEY) == DEV_KEY
    with pytest.raises(PiiKeyError, match=r"^TELEMETRY_PII_KEY is or contains the public dev"):
        validate_key(DEV_KEY, production=True)
    with pytest.raises(PiiKeyError, match=r"^TELEMETRY_PII_KEY is one byte repeated 32 times; "):
        validate_key(b"x" * 32)


def test_key_id_is_a_stable_public_fingerprint() -> None:
    expected = hmac.new(KEY, b"telemetry-lake/key-id", hashlib.sha256).hexdigest()[:12]
    assert key_id(KEY) == expected
    assert key_id(KEY) == key_id(bytes(KEY))
    assert re.fullmatch(r"[0-9a-f]{12}", key_id(KEY))
    assert key_id(KEY) != key_id(OTHER_KEY)
    # Pinned: a changed fingerprint for the same key would look like a key rotation.
    assert key_id(DEV_KEY) == "b6c43ecc1deb"


def test_hmac_hex_matches_the_hmac_module_and_rfc_4231() -> None:
    for value in ["", "u-123", "ünï©ødé ✓"]:
        expected = hmac.new(KEY, value.encode("utf-8"), hashlib.sha256).hexdigest()
        assert hmac_hex(KEY, value) == expected
    # RFC 4231, test case 2.
    assert hmac_hex(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert hmac_hex(KEY, "u-123") != hmac_hex(OTHER_KEY, "u-123")


@pytest.mark.parametrize(
    "secret",
    [b"k", b"x" * 32, DEV_KEY, b"y" * 64, bytes(range(65)), bytes(range(100))],
    ids=["1-byte", "32-byte", "dev", "64-byte", "65-byte", "100-byte"],
)
def test_hmac_pads_reproduce_hmac_with_plain_sha256(secret: bytes) -> None:
    inner, outer = hmac_pads(secret)
    assert len(inner) == len(outer) == 64
    assert bytes(i ^ o for i, o in zip(inner, outer, strict=True)) == bytes([0x36 ^ 0x5C]) * 64
    for value in ["", "u-123", "ünï©ødé ✓", "x" * 1000]:
        msg = value.encode("utf-8")
        # The exact shape of the DuckDB expression: sha256(outer || unhex(sha256(inner || msg))).
        inner_hex = hashlib.sha256(inner + msg).hexdigest()
        outer_hex = hashlib.sha256(outer + bytes.fromhex(inner_hex)).hexdigest()
        assert outer_hex == hmac_hex(secret, value)


def test_hmac_pads_hash_long_keys_first() -> None:
    long_key = bytes(range(100))
    inner, _ = hmac_pads(long_key)
    assert inner[:32] == bytes(b ^ 0x36 for b in hashlib.sha256(long_key).digest())
    assert inner[32:] == b"\x36" * 32


# --- scrub_text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail
        ("a.b+c@ex-ample.co.uk", "<email>"),
        ("mail a.b+c@ex-ample.co.uk, thanks", "mail <email>, thanks"),
        # phone
        ("+44 20 7946 0958", "<phone>"),
        ("+1 (555) 123-4567", "<phone>"),
        ("(555) 123-4567", "<phone>"),
        ("555-123-4567", "<phone>"),
        ("call 555.123.4567 now", "call <phone> now"),
        ("020 7946 0958", "<phone>"),
        # IPv4
        ("10.0.0.1", "<ipv4>"),
        ("from 192.168.1.255:8080", "from <ipv4>:8080"),
        ("999.1.1.1", "999.1.1.1"),
        ("256.1.1.1", "256.1.1.1"),
        # IPv6
        ("2001:db8::1", "<ipv6>"),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "<ipv6>"),
        ("peer [fe80::1]:443", "peer [<ipv6>]:443"),
        ("mapped ::ffff:10.0.0.1.", "mapped <ipv6>."),
        ("at 12:30:45", "at 12:30:45"),
        ("mac 00:1a:2b:3c:4d:5e", "mac 00:1a:2b:3c:4d:5e"),
        # cards
        ("4111 1111 1111 1111", "<card>"),
        ("4111-1111-1111-1111", "<card>"),
        ("4111111111111111", "<card>"),
        ("card 4111 1111 1111 1111 exp 12", "card <card> exp 12"),
        ("card 4111 1111 1111 1111 12", "card <card> 12"),
        ("4111111111111112", "4111111111111112"),
        ("score 0.4111111111111111", "score 0.4111111111111111"),
        # IBAN
        ("GB82 WEST 1234 5698 7654 32", "<iban>"),
        ("DE89370400440532013000", "<iban>"),
        ("pay BE68 5390 0754 7034 EUR", "pay <iban> EUR"),
        ("GB83WEST12345698765432", "GB83WEST12345698765432"),
        ("DE00370400440532013000", "DE00370400440532013000"),
        # must survive
        ("1717200000000", "1717200000000"),
        ("ts=1717200000000 late", "ts=1717200000000 late"),
        # Luhn-valid, but epoch-ms timestamps start with 1, outside the card ranges.
        ("ts=1717200000006", "ts=1717200000006"),
        ("order 12345", "order 12345"),
        ("price 19.99", "price 19.99"),
        ("2024-06-01 12:00:00", "2024-06-01 12:00:00"),
        ("id 550e8400-e29b-41d4-a716-446655440000", "id 550e8400-e29b-41d4-a716-446655440000"),
        ("", ""),
        ("Connection reset by peer", "Connection reset by peer"),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_scrub_text_with_several_kinds_at_once() -> None:
    text = (
        "user jane@example.com (ip 10.1.2.3, v6 2001:db8::42) paid with 4111-1111-1111-1111 "
        "from GB82 WEST 1234 5698 7654 32; call +44 20 7946 0958 or 555-123-4567 re order "
        "12345 at 1717200000000 for 19.99"
    )
    assert scrub_text(text) == (
        "user <email> (ip <ipv4>, v6 <ipv6>) paid with <card> from <iban>; call <phone> or "
        "<phone> re order 12345 at 1717200000000 for 19.99"
    )


def test_scrub_text_is_idempotent_on_placeholders() -> None:
    text = " ".join(PLACEHOLDERS)
    assert scrub_text(text) == text


# --- scrub_json_strings --------------------------------------------------------------------------


def _scrub_values(value: object) -> object:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [_scrub_values(item) for item in value]
    if isinstance(value, dict):
        return {scrub_text(k): _scrub_values(v) for k, v in value.items()}
    return value


def test_scrub_json_strings_keeps_structure_and_numbers() -> None:
    text = (
        '{"email": "a@b.com", "n": 4111111111111111, "ts": 1717200000000, '
        '"list": ["10.0.0.1", 1.5e3, null, true], '
        '"a@b.com": {"q": "say \\"hi\\" to 555-123-4567"}, '
        '"caf\\u00e9": "ok"}'
    )
    result = scrub_json_strings(text)
    assert result == (
        '{"email": "<email>", "n": 4111111111111111, "ts": 1717200000000, '
        '"list": ["<ipv4>", 1.5e3, null, true], "<email>": {"q": "say \\"hi\\" to <phone>"}, '
        '"caf\\u00e9": "ok"}'
    )
    assert json.loads(result) == _scrub_values(json.loads(text))


def test_scrub_json_strings_reencodes_changed_literals_without_ascii_escapes() -> None:
    assert scrub_json_strings('["caf\\u00e9 a@b.com"]') == '["café <email>"]'


def test_scrub_json_strings_scrubs_broken_json_too() -> None:
    assert scrub_json_strings('{"m": "a@b.com \\x", "n": 1') == '{"m": "<email> \\x", "n": 1'


# --- redact_line: lines that parse ---------------------------------------------------------------


def test_redact_line_parsed_nested() -> None:
    line = json.dumps(
        {
            "event": "click",
            "user_id": "u-123",
            "ctx": {
                "session_id": "s-9",
                "items": [{"user_id_prev": 42}, {"note": "mail a@b.com"}],
            },
            "message": "failed for jane@example.com from 10.0.0.1",
            "score": 0.5,
        }
    )
    expected = {
        "event": "click",
        "user_id": h("u-123"),
        "ctx": {
            "session_id": h("s-9"),
            "items": [{"user_id_prev": h("42")}, {"note": "mail <email>"}],
        },
        "message": "failed for <email> from <ipv4>",
        "score": 0.5,
    }
    assert redact_line(line, KEY, KEPT) == json.dumps(expected, separators=(",", ":"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"user_id": 12345}', hashed('{"user_id":"HASH"}', "12345")),
        ('{"user_id": null}', '{"user_id":null}'),
        ('{"user_id": true}', hashed('{"user_id":"HASH"}', "true")),
        ('{"user_id": {"a": [1, "é"]}}', hashed('{"user_id":"HASH"}', '{"a":[1,"é"]}')),
        ('[{"session_id": "s"}, "a@b.com", 3]', hashed('[{"session_id":"HASH"},"<email>",3]', "s")),
        ('{"a@b.com": 1}', '{"<email>":1}'),
        ('"just a string from 10.0.0.1"', '"just a string from <ipv4>"'),
        # A string carrying JSON of its own: its identifiers are hashed as well.
        (
            '{"raw": "{\\"user_id\\":\\"abc\\"}"}',
            hashed('{"raw":"{\\"user_id\\":\\"HASH\\"}"}', "abc"),
        ),
    ],
)
def test_redact_line_parsed_values(line: str, expected: str) -> None:
    assert redact_line(line, KEY, KEPT) == expected


# --- redact_line: lines that do not parse --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"user_id": "abc", "ts": ', hashed('{"user_id": "HASH", "ts": ', "abc")),
        ('{"user_id":"abc","ts":', hashed('{"user_id":"HASH","ts":', "abc")),
        ('{"event": "x", "user_id": "abc', hashed('{"event": "x", "user_id": "HASH', "abc")),
        ('{"user_id": 12345, "x":', hashed('{"user_id": HASH, "x":', "12345")),
        ('{"user_id": null, "x":', '{"user_id": null, "x":'),
        (
            "{'user_id': 'abc', 'email': 'x@y.com'}",
            hashed("{'user_id': 'HASH', 'email': '<email>'}", "abc"),
        ),
        ('{"user_id": "a\\"b", "ts": ', hashed('{"user_id": "HASH", "ts": ', 'a\\"b')),
        ('{"user_id": "abc\\', hashed('{"user_id": "HASH', "abc\\")),
        ('{"session_id": [1, 2], "x":', hashed('{"session_id": HASH, "x":', "[1, 2]")),
        (
            '{"user_id":"u1","user_id_prev":"u0","session_id":"s1"',
            hashed('{"user_id":"HASH","user_id_prev":"HASH","session_id":"HASH"', "u1", "u0", "s1"),
        ),
        (
            '{"raw": "{\\"user_id\\":\\"abc\\",\\"n\\":1}", "x',
            hashed('{"raw": "{\\"user_id\\":\\"HASH\\",\\"n\\":1}", "x', "abc"),
        ),
        ('{"user_id": "u-1", "score": NaN}', hashed('{"user_id": "HASH", "score": NaN}', "u-1")),
        (
            '{"user_id": "u-1", "score": 1e400}',
            hashed('{"user_id": "HASH", "score": 1e400}', "u-1"),
        ),
        ("not json, mail a@b.com", "not json, mail <email>"),
    ],
)
def test_redact_line_unparseable(line: str, expected: str) -> None:
    assert redact_line(line, KEY, KEPT) == expected


def test_redact_line_hashes_are_not_scrubbed_afterwards() -> None:
    # A digit run inside a hex word is never PII: digests come out of the scrubber whole, even
    # those holding a Luhn-valid run of 13-19 digits or a trunk-0 phone-shaped run.
    digests = [h(str(n)) for n in range(20_000)]
    assert [d for d in digests if scrub_text(d) != d] == []
    luhn_runs = [d for d in digests if re.search(r"(?<![0-9])[2-6][0-9]{12,18}(?![0-9])", d)]
    assert luhn_runs, "the sample must hold digests with long digit runs"
    value = next(str(n) for n in range(20_000) if h(str(n)) in luhn_runs)
    assert redact_line(f'{{"user_id": "{value}", "x', KEY, KEPT) == hashed(
        '{"user_id": "HASH", "x', value
    )


def test_redact_line_survives_absurd_nesting() -> None:
    line = "[" * 100_000 + '{"user_id": "abc"}'
    assert redact_line(line, KEY, KEPT) == "[" * 100_000 + hashed('{"user_id": "HASH"}', "abc")


def test_redact_line_same_id_hashes_alike_in_both_branches() -> None:
    parsed = json.loads(redact_line('{"user_id":"u-123"}', KEY, KEPT))
    assert parsed["user_id"] == h("u-123")
    assert redact_line('{"user_id":"u-123","ts":', KEY, KEPT) == hashed(
        '{"user_id":"HASH","ts":', "u-123"
    )


_ID_TEXT = st.text(st.characters(exclude_characters='"\\', exclude_categories=("Cs",)), min_size=6)


@given(raw_id=_ID_TEXT)
def test_redact_line_never_leaks_an_id_from_a_truncated_line(raw_id: str) -> None:
    prefix, suffix = '{"event":"click","user_id":"', '","ts":17'
    assume(raw_id not in prefix + suffix)
    redacted = redact_line(prefix + raw_id + suffix, KEY, KEPT)
    assert redacted == prefix + h(raw_id) + suffix
    assert raw_id not in redacted


@given(raw_id=_ID_TEXT)
def test_redact_line_branches_agree_for_plain_ids(raw_id: str) -> None:
    encoded = json.dumps(raw_id, ensure_ascii=False)
    assume(encoded == f'"{raw_id}"')  # ids json.dumps would escape are hashed raw when truncated
    whole = json.loads(redact_line(f'{{"user_id":{encoded}}}', KEY, KEPT))
    assert whole == {"user_id": h(raw_id)}
    assert redact_line(f'{{"user_id":{encoded}', KEY, KEPT) == hashed('{"user_id":"HASH"', raw_id)


# --- redact_line: keys the schemas do not know -------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"usr_id": "u-000123", "event": "click"}',
        '{"usr_id": "u-000123", "event": "cl',
        "{'usr_id': 'u-000123', 'event': 'click'}",
        '{"ctx": {"customer": "u-000123"}, "event": "click"}',
        '{"ctx": {"customer": "u-000123"}, "ev',
    ],
)
def test_redact_line_hashes_the_value_of_an_unknown_key(line: str) -> None:
    redacted = redact_line(line, KEY, KEPT)
    assert "u-000123" not in redacted
    assert h("u-000123") in redacted


def test_the_schemas_fields_are_kept_and_identifiers_are_not() -> None:
    from pipelines.lib.schemas.registry import kept_field_names

    kept = kept_field_names()
    assert {"event_id", "request_id", "message", "filters", "items", "position"} <= kept
    assert not kept & HASHED_KEYS


@pytest.mark.parametrize(
    "line",
    [
        '{"user_id":"u-000123","message":"mail leo\\u0040example.com x',
        "'mail mallory\\u0040example.com'",
        '{"message": "call +44\\u00207700\\u0020900123", "x',
    ],
)
def test_a_broken_line_s_json_escapes_do_not_hide_pii(line: str) -> None:
    redacted = redact_line(line, KEY, KEPT)
    assert "example.com" not in redacted and "7700" not in redacted, redacted
