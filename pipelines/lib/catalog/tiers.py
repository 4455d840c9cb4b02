"""Access tiers: what each audience is given, since DuckDB has no grants.

Three tiers, one catalog file each (``lib/catalog/views.py`` writes them):

* ``engineer``: every table, every column (``data/lake.duckdb``);
* ``analyst``: events, rollups and quality tables, without free text and key ids. Hidden: every
  event field whose schema says ``x-pii-handling: scrub`` (``error.message``,
  ``request.filters``, and any future one: the rule follows the schemas), every key-id column
  (``pii_key_id``, and ``pii_key_id_<suffix>`` such as a rotation's ``pii_key_id_prev``), and
  quarantine's ``text``. Hashed ids (``user_id``, ``session_id``, ``user_id_prev``) stay: they
  are what analysts join on;
* ``viewer``: rollups only, and of those only the models whose rows say how many users they
  cover (``USER_COUNT_COLUMNS``); a row covering fewer than k users (default 10) is withheld.

Quarantine's ``text`` is hidden from analysts because it is a redacted *raw line*: identifiers,
and the value under any key the schemas do not declare, are hashed, but free text is only
scrubbed by pattern, so an identifier typed into a message or a garbled line can get past it. The
reason, detail, file and line stay: enough to find and fix a producer.

Key-id columns are matched by name pattern and evaluated when a view is *queried* (DuckDB's
``COLUMNS(lambda ...)``), so a key-id column that appears in later files is hidden without a
catalog rebuild; a new ``scrub`` field in a schema changes the views' SQL and so the catalog's
code version, which rebuilds it.

Everything here restricts what a catalog *shows*. A reader of a view file also learns the
Parquet paths and, with storage credentials, can read the files directly: ``s3_policy`` gives
the prefix policies that enforce the table-level part on S3 (see docs/access_tiers.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pipelines.lib.schemas.registry import load_event_schemas

ENGINEER, ANALYST, VIEWER = "engineer", "analyst", "viewer"
TIERS = (ENGINEER, ANALYST, VIEWER)
DEFAULT_VIEWER_MIN_USERS = 10
# k below 2 withholds nothing a single user could be singled out by.
MIN_VIEWER_MIN_USERS = 2

EVENTS, ROLLUPS, QUALITY = "events", "rollups", "quality"

# pii_key_id and any pii_key_id_<suffix> (a key rotation's pii_key_id_prev): fingerprints of the
# hashing keys, which tell an analyst which rows a key change split, and nothing they need.
KEY_ID_PATTERN = "pii_key_id(_[a-z0-9_]+)?"
_KEY_ID = re.compile(KEY_ID_PATTERN)

# Quality tables' columns withheld from analysts, beyond the key ids (see the module docstring).
ANALYST_HIDDEN_QUALITY = {"quarantine": ("text",)}

# Per rollup model, the column that says how many distinct users a row covers. A model absent
# here has no such count and is left out of the viewer tier: traffic_parts holds one row per
# hashed user, session or event value (its members are the ids themselves), and
# compliance_monthly counts rows and lines per PII class and reason, not users.
USER_COUNT_COLUMNS = {
    "traffic_daily": "distinct_users",
    "traffic_hourly": "distinct_users",
    "errors_daily": "distinct_users",
    "traffic_weekly": "distinct_users",
    "experiments_weekly": "users_assigned",
    "traffic_monthly": "distinct_users",
}

# What each tier's catalog reads, as lake prefixes: the storage policies grant exactly these.
TIER_PREFIXES = {
    ENGINEER: ("",),  # the whole lake
    ANALYST: ("events/", "rollups/", "contracts/", "quality/", "ledger/", "quarantine/"),
    # The viewer catalog reads rollups/, which holds the small cells too: a viewer who must not
    # see them gets no lake access, only the bundles (already suppressed).
    VIEWER: ("bundles/",),
}


# Every top-level prefix of the lake (README "The lake", plus the privacy operations' request
# and audit folders): the policies deny what a tier is not granted of these explicitly.
LAKE_PREFIXES = (
    "landing/",
    "events/",
    "quarantine/",
    "ledger/",
    "contracts/",
    "quality/",
    "reports/",
    "rollups/",
    "bundles/",
    "ops/",
    "requests/",
    ".staging/",
    "_publish/",  # a day's tables staged for publishing, and the publish journals
    "_index/",  # which partition owns each landing line (line numbers and dates only)
)


def prefixes_rel(tier: str) -> tuple[str, ...]:
    """The lake prefixes (relative to the root) a tier may read; ``""`` is the whole lake."""
    return TIER_PREFIXES[check_tier(tier)]


@dataclass(frozen=True)
class Exposure:
    """How one table appears in one tier."""

    hidden_columns: tuple[str, ...] = ()  # exact names, from the schemas and the rules above
    hide_key_ids: bool = False  # also every column matching KEY_ID_PATTERN
    user_count_column: str | None = None  # withhold rows where it is below k (viewer)

    def hides(self, column: str) -> bool:
        return column in self.hidden_columns or (
            self.hide_key_ids and _KEY_ID.fullmatch(column) is not None
        )


def scrubbed_fields(event_type: str) -> tuple[str, ...]:
    """The schema's free-text fields (``x-pii-handling: scrub``) of one event type, sorted."""
    schema = load_event_schemas()[event_type]
    return tuple(
        sorted(n for n, p in schema.properties.items() if p.get("x-pii-handling") == "scrub")
    )


def exposure(tier: str, schema: str, name: str) -> Exposure | None:
    """How ``schema.name`` appears in ``tier``, or None when the tier does not show it."""
    check_tier(tier)
    if tier == ENGINEER:
        return Exposure()
    if tier == ANALYST:
        if schema == EVENTS:
            return Exposure(scrubbed_fields(name), hide_key_ids=True)
        if schema == QUALITY:
            return Exposure(ANALYST_HIDDEN_QUALITY.get(name, ()), hide_key_ids=True)
        return Exposure(hide_key_ids=True)
    if schema == ROLLUPS and name in USER_COUNT_COLUMNS:
        return Exposure(hide_key_ids=True, user_count_column=USER_COUNT_COLUMNS[name])
    return None


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise ValueError(f"unknown access tier {tier!r}: one of {', '.join(TIERS)}")
    return tier


def parse_tiers(text: str | None, *, source: str = "TELEMETRY_CATALOG_TIERS") -> tuple[str, ...]:
    """A comma-separated list of tiers (None or blank: all three), in TIERS order."""
    if text is None or not text.strip():
        return TIERS
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TIERS]
    if unknown or not names:
        raise ValueError(
            f"{source}={text!r}: list one or more of {', '.join(TIERS)}, comma-separated "
            f"(unknown: {', '.join(unknown) or 'none given'})"
        )
    return tuple(t for t in TIERS if t in names)


def check_min_users(k: int, *, source: str = "TELEMETRY_VIEWER_MIN_USERS") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_VIEWER_MIN_USERS:
        raise ValueError(
            f"{source}={k!r}: the viewer tier's minimum users per row must be an integer of at "
            f"least {MIN_VIEWER_MIN_USERS} (default {DEFAULT_VIEWER_MIN_USERS})"
        )
    return k


def tier_path(engineer_path: str, tier: str) -> str:
    """Where a tier's catalog file goes: the engineer's is the configured path
    (``data/lake.duckdb``), the others sit beside it (``data/lake.analyst.duckdb``)."""
    check_tier(tier)
    if tier == ENGINEER:
        return engineer_path
    stem, suffix = os.path.splitext(engineer_path)
    return f"{stem}.{tier}{suffix or '.duckdb'}"


def s3_policy(tier: str, bucket: str, prefix: str = "") -> dict:
    """An IAM policy document granting ``tier`` read access to exactly the lake prefixes its
    catalog reads (the viewer: the bundles) and nothing else of the lake."""
    check_tier(tier)
    base = prefix.strip("/")
    base = f"{base}/" if base else ""
    prefixes = [f"{base}{p}" for p in prefixes_rel(tier)]
    objects = [f"arn:aws:s3:::{bucket}/{p}*" for p in prefixes]
    statements: list[dict] = [
        {
            "Sid": f"Read{tier.capitalize()}Prefixes",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": objects,
        },
        {
            "Sid": f"List{tier.capitalize()}Prefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        },
    ]
    granted = prefixes_rel(tier)
    denied = (
        []
        if "" in granted
        else [f"arn:aws:s3:::{bucket}/{base}{p}*" for p in LAKE_PREFIXES if p not in granted]
    )
    if denied:
        # An explicit deny wins over any broader Allow the user holds elsewhere (a team policy).
        # Scoped to the lake's own prefixes, so the user's other buckets are not affected.
        statements.append(
            {
                "Sid": f"Deny{tier.capitalize()}OtherLakePrefixes",
                "Effect": "Deny",
                "Action": ["s3:GetObject"],
                "Resource": denied,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
