"""Validate configuration values and say exactly what to set when one is wrong (no Dagster here)."""

from __future__ import annotations

from datetime import date

from pipelines.lib import pii

DEFAULT_FIRST_DATE = date(2025, 1, 1)
DEV_KEY_WARNING = (
    "TELEMETRY_PII_KEY is not set: hashing identifiers with the built-in DEVELOPMENT key, which "
    "is public, so these hashes are not private. Set TELEMETRY_PII_KEY (at least 32 bytes) before "
    "ingesting real data; TELEMETRY_ENV=production refuses to run without it."
)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and what to set."""


def first_partition_date(value: str | None) -> date:
    if not value:
        return DEFAULT_FIRST_DATE
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"TELEMETRY_FIRST_DATE={value!r} is not a date: set it as YYYY-MM-DD (e.g. 2025-01-01)"
        ) from exc


def pii_secret(key: str | None, environment: str | None) -> tuple[bytes, str | None]:
    """The HMAC secret and, for the development key, the warning to log."""
    env = (environment or "development").strip().lower()
    if env not in ("development", "test", "production"):
        raise ConfigError(
            f"TELEMETRY_ENV={environment!r} is not one of development, test, production"
        )
    if not key:
        if env == "production":
            raise ConfigError(
                "TELEMETRY_PII_KEY is not set and TELEMETRY_ENV=production: set TELEMETRY_PII_KEY "
                "to a secret of at least 32 bytes (e.g. python -c 'import secrets; "
                "print(secrets.token_hex(32))')"
            )
        return pii.DEV_KEY, DEV_KEY_WARNING
    try:
        return pii.validate_key(key.encode("utf-8")), None
    except pii.PiiKeyError as exc:
        raise ConfigError(str(exc)) from exc


def lake_root(value: str | None, default: str) -> str:
    root = (value or "").strip() or default
    if "://" in root and not root.startswith(("s3://", "file://", "memory://")):
        raise ConfigError(f"TELEMETRY_LAKE_ROOT={root!r}: use a local path or s3://bucket/prefix")
    return root
