"""The PII keyring from configuration: ``TELEMETRY_PII_KEY``, ``TELEMETRY_PII_KEYS`` or
``TELEMETRY_PII_KEYS_FILE`` and ``TELEMETRY_PII_OVERLAP_DAYS``, each wrong value named with what to
set."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import yaml

from pipelines.lib.ingest import keyring, pii
from pipelines.lib.lake.errors import ConfigError

DEV_KEY_WARNING = (
    "TELEMETRY_PII_KEY is not set: hashing identifiers with the built-in DEVELOPMENT key, which "
    "is public, so these hashes are not private. Set TELEMETRY_PII_KEY (at least 32 bytes) before "
    "ingesting real data; TELEMETRY_ENV=production refuses to run without it."
)


_KEY_VARIABLES = ("TELEMETRY_PII_KEY", "TELEMETRY_PII_KEYS", "TELEMETRY_PII_KEYS_FILE")
_KEY_FIELDS = ("name", "secret", "active_from")
_KEYS_EXAMPLE = (
    '[{"name": "2025-a", "secret": "<64 hex>", "active_from": "2025-01-01"}, '
    '{"name": "2026-a", "secret": "<64 hex>", "active_from": "2026-03-01"}]'
)


def _environment(environment: str | None) -> str:
    env = (environment or "development").strip().lower()
    if env not in ("development", "test", "production"):
        raise ConfigError(
            f"TELEMETRY_ENV={environment!r} is not one of development, test, production"
        )
    return env


def overlap_days(value: str | int | None) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return keyring.DEFAULT_OVERLAP_DAYS
    try:
        days = int(value)
    except ValueError as exc:
        raise ConfigError(
            f"TELEMETRY_PII_OVERLAP_DAYS={value!r} is not a whole number of days: set it to at "
            f"least {keyring.MIN_OVERLAP_DAYS} (default {keyring.DEFAULT_OVERLAP_DAYS})"
        ) from exc
    if days < keyring.MIN_OVERLAP_DAYS:
        raise ConfigError(
            f"TELEMETRY_PII_OVERLAP_DAYS={days} is below {keyring.MIN_OVERLAP_DAYS}: the "
            "contracts of a rotation day join it with the day before, which needs the previous "
            f"hash; set it to at least {keyring.MIN_OVERLAP_DAYS} (default "
            f"{keyring.DEFAULT_OVERLAP_DAYS})"
        )
    return days


def _activation(value: object, where: str) -> date:
    # YAML reads an unquoted 2025-01-01 as a date already; JSON gives a string.
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: active_from={value!r} is not a date: set it as YYYY-MM-DD")


def _dated_keys(entries: object, source: str) -> list[keyring.DatedKey]:
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{source} must be a non-empty list of keys, each with a name, a secret and an "
            f"active_from date, e.g. {_KEYS_EXAMPLE}"
        )
    keys = []
    for n, entry in enumerate(entries, start=1):
        where = f"{source}, key {n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not an object with {', '.join(_KEY_FIELDS)}")
        unknown = sorted(set(entry) - set(_KEY_FIELDS))
        missing = [f for f in _KEY_FIELDS if entry.get(f) in (None, "")]
        if unknown or missing:
            raise ConfigError(
                f"{where}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"unknown field(s) {', '.join(unknown)}" if unknown else "",
                    )
                    if part
                )
                + f" (each key has exactly {', '.join(_KEY_FIELDS)})"
            )
        name, secret = entry["name"], entry["secret"]
        if not isinstance(name, str) or not isinstance(secret, str):
            # A YAML secret of digits only would arrive as a number and hash differently.
            raise ConfigError(f"{where}: name and secret must be strings (quote them)")
        keys.append(
            keyring.DatedKey(
                secret.encode("utf-8"),
                _activation(entry["active_from"], f"{where} ({name!r})"),
                name,
            )
        )
    return keys


def _read_keys_file(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"TELEMETRY_PII_KEYS_FILE={path!r} cannot be read ({exc.strerror or exc}): set it to "
            "the path of a JSON or YAML file listing the keys"
        ) from exc
    try:
        # JSON is YAML, so one parser reads both shapes of the secrets file.
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"TELEMETRY_PII_KEYS_FILE={path!r} is neither JSON nor YAML: {exc}"
        ) from exc


def pii_keyring(
    key: str | None,
    environment: str | None,
    *,
    keys: str | None = None,
    keys_file: str | None = None,
    overlap: str | int | None = None,
    first_date: date | None = None,
) -> tuple[keyring.Keyring, str | None]:
    """The PII keyring and, for the development key, the warning to log.

    One of: ``TELEMETRY_PII_KEY`` (a single key, active always), ``TELEMETRY_PII_KEYS`` (a JSON
    list of dated keys) or ``TELEMETRY_PII_KEYS_FILE`` (a JSON or YAML file of the same list).
    ``first_date`` (the first partition) must be covered by the earliest key.
    """
    env = _environment(environment)
    production = env == "production"
    days = overlap_days(overlap)
    given = [
        name for name, value in zip(_KEY_VARIABLES, (key, keys, keys_file), strict=True) if value
    ]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)} are set: set only one of {', '.join(_KEY_VARIABLES)} "
            "(a single key, or a list of dated keys to rotate)"
        )
    warning = None
    try:
        if not given:
            if production:
                raise ConfigError(
                    "TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production: set "
                    "TELEMETRY_PII_KEY to a secret of at least 32 bytes (e.g. python -c 'import "
                    "secrets; print(secrets.token_hex(32))'), or TELEMETRY_PII_KEYS / "
                    "TELEMETRY_PII_KEYS_FILE to a list of dated keys"
                )
            ring = keyring.Keyring.single(pii.DEV_KEY, "development", days)
            warning = DEV_KEY_WARNING
        elif key:
            ring = keyring.Keyring.single(
                key.encode("utf-8"), "default", days, production=production
            )
        else:
            if keys:
                source = "TELEMETRY_PII_KEYS"
                try:
                    entries = json.loads(keys)
                except ValueError as exc:
                    raise ConfigError(
                        f"TELEMETRY_PII_KEYS is not valid JSON ({exc}): set it to a list such as "
                        f"{_KEYS_EXAMPLE}"
                    ) from exc
            else:
                assert keys_file is not None
                source = f"TELEMETRY_PII_KEYS_FILE ({keys_file})"
                entries = _read_keys_file(keys_file)
            ring = keyring.Keyring(
                _dated_keys(entries, source), days, source=source, production=production
            )
        if first_date is not None:
            ring.check_covers(first_date)
    except (pii.PiiKeyError, keyring.KeyringError) as exc:
        raise ConfigError(str(exc)) from exc
    return ring, warning
