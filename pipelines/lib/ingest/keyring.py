"""The PII keys over time: which key hashes an event date, and which one it replaced.

A key is active from its ``active_from`` date until the next key's. Partition D is hashed with
the key active on D; for ``overlap_days`` after a rotation its ``user_id`` rows also carry the
hash under the previous key (``user_id_prev``), so users can be joined across the boundary.
Erasure must hash a user's raw id under every key still covering retained data
(``all_keys``). No Dagster here: settings.py builds the keyring from the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipelines.lib.ingest import pii

# Covers any calendar month: a month that holds days before a rotation holds at most 30 after it,
# so with a 31-day overlap every monthly (and weekly) distinct-user count that spans a rotation
# can bridge each user through user_id_prev (see sql/rollups/traffic_parts.sql).
DEFAULT_OVERLAP_DAYS = 31
# The contracts of day D join it with D-1: on the boundary day at least, rows must carry the
# previous hash or every request crossing midnight would break the user-agreement rule.
MIN_OVERLAP_DAYS = 1
# The single TELEMETRY_PII_KEY is active from the beginning of time.
ALWAYS = date.min
SINGLE_KEY_VARIABLE = "TELEMETRY_PII_KEY"


class KeyringError(ValueError):
    """The keys cannot hash a day, or contradict each other; the message says what to set."""


@dataclass(frozen=True)
class PiiKey:
    """One HMAC secret; ``key_id`` is its public fingerprint, recorded with the data it hashed."""

    secret: bytes = field(repr=False)  # never in a log line or a traceback

    @property
    def key_id(self) -> str:
        return pii.key_id(self.secret)


@dataclass(frozen=True)
class DatedKey:
    """A secret with a name (for people: logs, docs, errors) and the first date it hashes."""

    secret: bytes = field(repr=False)
    active_from: date
    name: str

    @property
    def key_id(self) -> str:
        # The same fingerprint as before keyrings existed, so rows already written keep their id.
        return pii.key_id(self.secret)

    @property
    def pii_key(self) -> PiiKey:
        return PiiKey(self.secret)

    def describe(self) -> str:
        since = "always" if self.active_from == ALWAYS else f"from {self.active_from}"
        return f"{self.name!r} (key id {self.key_id}, active {since})"


class Keyring:
    """Keys ordered by activation; validated once, so every lookup below is total or says why.
    Each secret is checked by ``pii.validate_key`` (``production`` refuses the public dev key)."""

    def __init__(
        self,
        keys: Sequence[DatedKey],
        overlap_days: int = DEFAULT_OVERLAP_DAYS,
        *,
        source: str = "TELEMETRY_PII_KEYS",
        production: bool = False,
    ) -> None:
        if not keys:
            raise KeyringError(f"{source} holds no key: list at least one")
        if overlap_days < MIN_OVERLAP_DAYS:
            raise KeyringError(
                f"TELEMETRY_PII_OVERLAP_DAYS={overlap_days} is below {MIN_OVERLAP_DAYS}: the "
                "contracts of a rotation day join it with the day before, which needs the "
                f"previous hash; set it to at least {MIN_OVERLAP_DAYS} (default "
                f"{DEFAULT_OVERLAP_DAYS})"
            )
        ordered = sorted(keys, key=lambda k: k.active_from)
        for label, value in (
            ("name", lambda k: k.name),
            ("active_from", lambda k: k.active_from),
            ("secret", lambda k: k.secret),
        ):
            seen: dict[object, DatedKey] = {}
            for key in ordered:
                other = seen.setdefault(value(key), key)
                if other is not key:
                    shown = "" if label == "secret" else f" {value(key)!s}"
                    raise KeyringError(
                        f"{source}: keys {other.name!r} and {key.name!r} have the same "
                        f"{label}{shown}; give every key its own {label}"
                    )
        for key in ordered:
            where = source if source == SINGLE_KEY_VARIABLE else f"{source} (key {key.name!r})"
            pii.validate_key(key.secret, source=where, production=production)
        self.keys: tuple[DatedKey, ...] = tuple(ordered)
        self.overlap_days = overlap_days
        self.source = source

    @classmethod
    def single(
        cls,
        secret: bytes,
        name: str = "default",
        overlap_days: int = DEFAULT_OVERLAP_DAYS,
        *,
        production: bool = False,
    ) -> Keyring:
        """One key for all time: the keyring of a plain ``TELEMETRY_PII_KEY``."""
        return cls(
            [DatedKey(secret, ALWAYS, name)],
            overlap_days,
            source=SINGLE_KEY_VARIABLE,
            production=production,
        )

    def _index(self, day: date) -> int:
        index = -1
        for i, key in enumerate(self.keys):
            if key.active_from <= day:
                index = i
        if index < 0:
            first = self.keys[0]
            raise KeyringError(
                f"no PII key is active on {day}: the earliest key of {self.source}, "
                f"{first.name!r}, is active from {first.active_from}; set its active_from to "
                f"TELEMETRY_FIRST_DATE or earlier"
            )
        return index

    def dated_key_for(self, day: date) -> DatedKey:
        return self.keys[self._index(day)]

    def key_for(self, day: date) -> PiiKey:
        """The key that hashes the events of ``day``: the latest one active on or before it."""
        return self.dated_key_for(day).pii_key

    def previous_for(self, day: date) -> PiiKey | None:
        """The key replaced by ``day``'s key, while ``day`` is within the overlap after the
        rotation (``active_from <= day < active_from + overlap_days``); else None."""
        index = self._index(day)
        if index == 0:
            return None
        current = self.keys[index]
        if day >= current.active_from + timedelta(days=self.overlap_days):
            return None
        return self.keys[index - 1].pii_key

    def all_keys(self) -> list[PiiKey]:
        """Every configured key, oldest first: erasure hashes a user's id under each of them."""
        return [k.pii_key for k in self.keys]

    def check_covers(self, first_day: date) -> None:
        """Fail unless some key is active on ``first_day`` (the first partition), so no partition
        is left without a key."""
        self._index(first_day)

    def __repr__(self) -> str:
        # Never the secrets: a keyring may end up in a log line or a traceback.
        keys = ", ".join(k.describe() for k in self.keys)
        return f"Keyring([{keys}], overlap_days={self.overlap_days})"
