"""Unit tests for pipelines.lib.ingest.keyring and the key settings: which key hashes a date, the
overlap
after a rotation, and every refusal of a bad configuration (each message says what to set)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from pipelines.defs.resources import PiiResource
from pipelines.lib.ingest import keyring_config, pii
from pipelines.lib.ingest.keyring import (
    ALWAYS,
    DEFAULT_OVERLAP_DAYS,
    DatedKey,
    Keyring,
    KeyringError,
    PiiKey,
)
from pipelines.lib.ingest.keyring_config import pii_keyring
from pipelines.lib.lake.errors import ConfigError

# Secrets that pass pii.validate_key: 32+ bytes, at least 8 distinct ones.
OLD_TEXT = "old-" + "0123456789abcdef" * 2
NEW_TEXT = "new-" + "fedcba9876543210" * 2
OLD = OLD_TEXT.encode()
NEW = NEW_TEXT.encode()
ROTATION = date(2026, 3, 1)
FIRST = date(2025, 1, 1)


def ring(overlap: int = 2) -> Keyring:
    return Keyring([DatedKey(NEW, ROTATION, "2026-a"), DatedKey(OLD, FIRST, "2025-a")], overlap)


def keys_json(*entries: tuple[str, str, str]) -> str:
    return json.dumps([{"name": n, "secret": s, "active_from": d} for n, s, d in entries])


# --- selection by date ---------------------------------------------------------------------------


def test_key_for_is_the_latest_key_active_on_the_day() -> None:
    keys = ring()
    assert keys.key_for(FIRST) == PiiKey(OLD)
    assert keys.key_for(ROTATION - timedelta(days=1)) == PiiKey(OLD)
    assert keys.key_for(ROTATION) == PiiKey(NEW)
    assert keys.key_for(date(2030, 1, 1)) == PiiKey(NEW)
    assert keys.dated_key_for(ROTATION).name == "2026-a"
    # Sorted by activation whatever the order given; all_keys is oldest first.
    assert keys.all_keys() == [PiiKey(OLD), PiiKey(NEW)]


def test_previous_key_only_within_the_overlap() -> None:
    keys = ring(overlap=2)
    assert keys.previous_for(ROTATION - timedelta(days=1)) is None
    assert keys.previous_for(ROTATION) == PiiKey(OLD)
    assert keys.previous_for(ROTATION + timedelta(days=1)) == PiiKey(OLD)
    assert keys.previous_for(ROTATION + timedelta(days=2)) is None
    assert keys.previous_for(FIRST) is None  # the first key replaced nothing


def test_three_keys_each_day_has_its_own_previous() -> None:
    third = b"third-" + b"0f1e2d3c4b5a6978" * 2
    later = ROTATION + timedelta(days=100)
    keys = Keyring(
        [DatedKey(OLD, FIRST, "a"), DatedKey(NEW, ROTATION, "b"), DatedKey(third, later, "c")], 5
    )
    assert keys.key_for(later) == PiiKey(third)
    assert keys.previous_for(later + timedelta(days=4)) == PiiKey(NEW)
    assert keys.previous_for(later + timedelta(days=5)) is None
    assert keys.all_keys() == [PiiKey(OLD), PiiKey(NEW), PiiKey(third)]


def test_a_day_before_the_first_key_fails_saying_what_to_set() -> None:
    with pytest.raises(KeyringError) as caught:
        ring().key_for(date(2024, 12, 31))
    assert str(caught.value) == (
        "no PII key is active on 2024-12-31: the earliest key of TELEMETRY_PII_KEYS, '2025-a', "
        "is active from 2025-01-01; set its active_from to TELEMETRY_FIRST_DATE or earlier"
    )


def test_single_key_is_active_always_and_keeps_its_key_id() -> None:
    keys = Keyring.single(pii.DEV_KEY)
    assert keys.keys[0].active_from == ALWAYS
    assert keys.key_for(date(1970, 1, 1)) == PiiKey(pii.DEV_KEY)
    assert keys.previous_for(date(2026, 1, 1)) is None
    assert keys.keys[0].key_id == PiiKey(pii.DEV_KEY).key_id == "b6c43ecc1deb"


def test_secrets_never_appear_in_reprs() -> None:
    text = repr(ring()) + repr(PiiKey(OLD)) + repr(DatedKey(OLD, FIRST, "x"))
    assert OLD_TEXT not in text and OLD_TEXT[4:20] not in text
    assert pii.key_id(OLD) in repr(ring())


# --- the keyring's own refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "TELEMETRY_PII_KEYS holds no key: list at least one"),
        (
            [DatedKey(OLD, FIRST, "a"), DatedKey(NEW, ROTATION, "a")],
            "TELEMETRY_PII_KEYS: keys 'a' and 'a' have the same name a; give every key its own "
            "name",
        ),
        (
            [DatedKey(OLD, FIRST, "a"), DatedKey(NEW, FIRST, "b")],
            "TELEMETRY_PII_KEYS: keys 'a' and 'b' have the same active_from 2025-01-01; give "
            "every key its own active_from",
        ),
        (
            [DatedKey(OLD, FIRST, "a"), DatedKey(OLD, ROTATION, "b")],
            "TELEMETRY_PII_KEYS: keys 'a' and 'b' have the same secret; give every key its own "
            "secret",
        ),
        (
            [DatedKey(b"short", FIRST, "a")],
            "TELEMETRY_PII_KEYS (key 'a') must be at least 32 bytes (got 5); generate one with: "
            "python -c 'import secrets; print(secrets.token_hex(32))'",
        ),
    ],
    ids=["empty", "same-name", "same-date", "same-secret", "short"],
)
def test_keyring_refuses(keys: list[DatedKey], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Keyring(keys, 2)
    assert str(caught.value) == message


def test_keyring_refuses_an_overlap_below_one_day() -> None:
    with pytest.raises(KeyringError, match=r"^TELEMETRY_PII_OVERLAP_DAYS=0 is below 1: "):
        Keyring([DatedKey(OLD, FIRST, "a")], 0)


# --- settings: where the keys come from ----------------------------------------------------------


def test_single_key_variable_is_one_key_for_all_time() -> None:
    keys, warning = pii_keyring(NEW_TEXT, "production")
    assert warning is None
    assert keys.all_keys() == [PiiKey(NEW)]
    assert keys.overlap_days == DEFAULT_OVERLAP_DAYS == 31


def test_no_key_in_development_is_the_dev_key_with_a_warning() -> None:
    keys, warning = pii_keyring(None, None)
    assert keys.all_keys() == [PiiKey(pii.DEV_KEY)]
    assert warning == keyring_config.DEV_KEY_WARNING


def test_keys_json_and_overlap() -> None:
    value = keys_json(("2025-a", OLD_TEXT, "2025-01-01"), ("2026-a", NEW_TEXT, "2026-03-01"))
    keys, warning = pii_keyring(None, "production", keys=value, overlap="7", first_date=FIRST)
    assert warning is None
    assert [(k.name, k.active_from) for k in keys.keys] == [("2025-a", FIRST), ("2026-a", ROTATION)]
    assert keys.overlap_days == 7
    assert keys.previous_for(ROTATION + timedelta(days=6)) == PiiKey(OLD)
    assert keys.previous_for(ROTATION + timedelta(days=7)) is None


def test_keys_file_json_and_yaml(tmp_path) -> None:
    as_json = tmp_path / "keys.json"
    as_json.write_text(keys_json(("a", OLD_TEXT, "2025-01-01"), ("b", NEW_TEXT, "2026-03-01")))
    as_yaml = tmp_path / "keys.yaml"
    # Unquoted dates are YAML dates; that is fine too.
    as_yaml.write_text(
        f"- name: a\n  secret: '{OLD_TEXT}'\n  active_from: 2025-01-01\n"
        f"- name: b\n  secret: \"{NEW_TEXT}\"\n  active_from: '2026-03-01'\n"
    )
    for path in (as_json, as_yaml):
        keys, _ = pii_keyring(None, "test", keys_file=str(path))
        assert keys.all_keys() == [PiiKey(OLD), PiiKey(NEW)]
        assert keys.key_for(ROTATION) == PiiKey(NEW)
        assert keys.source == f"TELEMETRY_PII_KEYS_FILE ({path})"


GOOD = keys_json(("a", OLD_TEXT, "2025-01-01"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"key": NEW_TEXT, "keys": GOOD},
            "TELEMETRY_PII_KEY and TELEMETRY_PII_KEYS are set: set only one of "
            "TELEMETRY_PII_KEY, TELEMETRY_PII_KEYS, TELEMETRY_PII_KEYS_FILE (a single key, or a "
            "list of dated keys to rotate)",
        ),
        (
            {"keys": GOOD, "keys_file": "/tmp/keys.json"},
            "TELEMETRY_PII_KEYS and TELEMETRY_PII_KEYS_FILE are set: set only one of",
        ),
        ({"keys": "[{"}, "TELEMETRY_PII_KEYS is not valid JSON ("),
        (
            {"keys": '{"name": "a"}'},
            "TELEMETRY_PII_KEYS must be a non-empty list of keys, each with a name, a secret and "
            "an active_from date, e.g. [",
        ),
        ({"keys": "[]"}, "TELEMETRY_PII_KEYS must be a non-empty list of keys"),
        (
            {"keys": '["x"]'},
            "TELEMETRY_PII_KEYS, key 1 is not an object with name, secret, active_from",
        ),
        (
            {"keys": json.dumps([{"name": "a", "secret": OLD_TEXT, "activ_from": "2025-01-01"}])},
            "TELEMETRY_PII_KEYS, key 1: missing active_from; unknown field(s) activ_from (each "
            "key has exactly name, secret, active_from)",
        ),
        (
            {"keys": json.dumps([{"name": "a", "secret": 12345, "active_from": "2025-01-01"}])},
            "TELEMETRY_PII_KEYS, key 1: name and secret must be strings (quote them)",
        ),
        (
            {"keys": keys_json(("a", OLD_TEXT, "1 March"))},
            "TELEMETRY_PII_KEYS, key 1 ('a'): active_from='1 March' is not a date: set it as "
            "YYYY-MM-DD",
        ),
        (
            {"keys": keys_json(("a", "short", "2025-01-01"))},
            "TELEMETRY_PII_KEYS (key 'a') must be at least 32 bytes (got 5)",
        ),
        (
            {"keys": keys_json(("a", OLD_TEXT, "2025-01-01"), ("a", NEW_TEXT, "2026-01-01"))},
            "TELEMETRY_PII_KEYS: keys 'a' and 'a' have the same name a",
        ),
        (
            {"keys": keys_json(("a", OLD_TEXT, "2025-01-01"), ("b", NEW_TEXT, "2025-01-01"))},
            "TELEMETRY_PII_KEYS: keys 'a' and 'b' have the same active_from 2025-01-01",
        ),
        (
            {"keys_file": "/nonexistent/keys.yaml"},
            "TELEMETRY_PII_KEYS_FILE='/nonexistent/keys.yaml' cannot be read (No such file or "
            "directory): set it to the path of a JSON or YAML file listing the keys",
        ),
        (
            {"keys": GOOD, "overlap": "two"},
            "TELEMETRY_PII_OVERLAP_DAYS='two' is not a whole number of days: set it to at least "
            "1 (default 31)",
        ),
        (
            {"keys": GOOD, "overlap": "0"},
            "TELEMETRY_PII_OVERLAP_DAYS=0 is below 1: the contracts of a rotation day join it "
            "with the day before, which needs the previous hash; set it to at least 1 (default "
            "31)",
        ),
        (
            {"keys": keys_json(("a", OLD_TEXT, "2025-02-01")), "first_date": FIRST},
            "no PII key is active on 2025-01-01: the earliest key of TELEMETRY_PII_KEYS, 'a', is "
            "active from 2025-02-01; set its active_from to TELEMETRY_FIRST_DATE or earlier",
        ),
        (
            {"environment": "production"},
            "TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production: set TELEMETRY_PII_KEY",
        ),
        (
            {
                "environment": "production",
                "keys": keys_json(
                    ("old", OLD_TEXT, "2025-01-01"),
                    ("dev", pii.DEV_KEY.decode(), "2026-01-01"),
                ),
            },
            "TELEMETRY_PII_KEYS (key 'dev') is or contains the public development key and "
            "TELEMETRY_ENV=production: set a secret of your own; generate one with: python -c "
            "'import secrets; print(secrets.token_hex(32))'",
        ),
        (
            {"environment": "production", "key": pii.DEV_KEY.decode()},
            "TELEMETRY_PII_KEY is or contains the public development key and "
            "TELEMETRY_ENV=production",
        ),
        ({"environment": "staging"}, "TELEMETRY_ENV='staging' is not one of development, test"),
    ],
    ids=[
        "key-and-keys",
        "keys-and-file",
        "bad-json",
        "not-a-list",
        "empty-list",
        "not-an-object",
        "fields",
        "number-secret",
        "bad-date",
        "short-secret",
        "same-name",
        "same-date",
        "no-file",
        "overlap-not-int",
        "overlap-zero",
        "first-date-uncovered",
        "production-no-key",
        "production-dev-key-in-list",
        "production-dev-key-single",
        "bad-env",
    ],
)
def test_settings_refuse_naming_the_variable(kwargs: dict, message: str) -> None:
    args = {"key": None, "environment": "test", **kwargs}
    with pytest.raises(ConfigError) as caught:
        pii_keyring(args.pop("key"), args.pop("environment"), **args)
    assert str(caught.value).startswith(message), str(caught.value)


def test_yaml_file_that_is_not_yaml(tmp_path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("- name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^TELEMETRY_PII_KEYS_FILE='.*keys.yaml' is neither"):
        pii_keyring(None, "test", keys_file=str(path))


# --- the resource --------------------------------------------------------------------------------


def test_resource_builds_the_keyring_from_its_fields() -> None:
    resource = PiiResource(
        keys_json=keys_json(("a", OLD_TEXT, "2025-01-01"), ("b", NEW_TEXT, "2026-03-01")),
        overlap_days="3",
        environment="production",
        first_date="2025-01-01",
    )
    keys = resource.keyring()
    assert keys.key_for(ROTATION) == PiiKey(NEW)
    assert keys.previous_for(ROTATION + timedelta(days=2)) == PiiKey(OLD)
    assert keys.previous_for(ROTATION + timedelta(days=3)) is None
    with pytest.raises(ConfigError, match="set its active_from to TELEMETRY_FIRST_DATE"):
        PiiResource(keys_json=resource.keys_json, first_date="2024-06-01").keyring()


# --- weak secrets: one rule (pii.validate_key), whichever variable the key came from ------------

_GENERATE = "; generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
WEAK = [
    (" " * 32, "is only whitespace"),
    ("\t \n" * 11, "is only whitespace"),
    ("a" * 40, "is one byte repeated 40 times"),
    ("abcdefg" * 5, "has only 7 distinct bytes (at least 8): it is guessable"),
]


@pytest.mark.parametrize(("secret", "problem"), WEAK, ids=["spaces", "tabs", "repeated", "7-bytes"])
def test_a_weak_single_key_is_refused_naming_the_variable(secret: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pii_keyring(secret, "development")
    assert str(caught.value) == f"TELEMETRY_PII_KEY {problem}{_GENERATE}"


@pytest.mark.parametrize(("secret", "problem"), WEAK, ids=["spaces", "tabs", "repeated", "7-bytes"])
def test_a_weak_key_in_a_list_is_refused_naming_the_variable_and_the_key(
    secret: str, problem: str, tmp_path
) -> None:
    entries = (("2025-a", OLD_TEXT, "2025-01-01"), ("2026-a", secret, "2026-03-01"))
    with pytest.raises(ConfigError) as caught:
        pii_keyring(None, "test", keys=keys_json(*entries))
    assert str(caught.value) == f"TELEMETRY_PII_KEYS (key '2026-a') {problem}{_GENERATE}"
    path = tmp_path / "keys.json"
    path.write_text(keys_json(*entries))
    with pytest.raises(ConfigError) as caught:
        pii_keyring(None, "test", keys_file=str(path))
    assert str(caught.value) == (
        f"TELEMETRY_PII_KEYS_FILE ({path}) (key '2026-a') {problem}{_GENERATE}"
    )


def test_the_dev_key_is_refused_in_production_only() -> None:
    secret = pii.DEV_KEY.decode()
    with pytest.raises(ConfigError) as caught:
        pii_keyring(secret, "production")
    assert str(caught.value) == (
        "TELEMETRY_PII_KEY is or contains the public development key and TELEMETRY_ENV=production:"
        f" set a secret of your own{_GENERATE}"
    )
    # The public key with a suffix is as guessable as the key itself.
    with pytest.raises(ConfigError, match="contains the public development key"):
        pii_keyring(secret + "-prod-2026", "production")
    keys, warning = pii_keyring(secret, "development")  # given explicitly: no warning either
    assert keys.all_keys() == [PiiKey(pii.DEV_KEY)] and warning is None


def test_a_good_key_passes_in_every_environment() -> None:
    good = "0123456789abcdef" * 4  # the shape of secrets.token_hex(32)
    for environment in ("development", "test", "production"):
        keys, warning = pii_keyring(good, environment)
        assert keys.all_keys() == [PiiKey(good.encode())] and warning is None


def test_the_resource_refuses_a_weak_key_when_the_run_starts() -> None:
    with pytest.raises(ConfigError, match=r"^TELEMETRY_PII_KEY is only whitespace; generate one"):
        PiiResource(key=" " * 32).keyring()
