"""``docs/contracts/pii_retention.md``: a page written by hand, whose regions between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` are rendered here: the PII rules and
fields, the retention windows and the S3 lifecycle configuration."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from pipelines.lib.docs import markdown as md
from pipelines.lib.docs.contract_pages.facts import DocsError, days, fields, handling, size, window
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.landing import RETIRED_MARKER
from pipelines.lib.ingest.partition import IngestSettings
from pipelines.lib.maintenance.lifecycle import lifecycle_configuration
from pipelines.lib.maintenance.retention import Windows
from pipelines.lib.schemas.registry import EventSchema, load_event_schemas

PII_PAGE = "contracts/pii_retention.md"

_PII_HANDLING = {
    "hash": "hashed: HMAC-SHA256, 64 hex characters",
    "scrub": "scrubbed: PII spans and the event's raw ids become typed hash tokens "
    "`<class:16 hex>`",
    "identifier": "kept as sent, held to its pattern or enum; a line whose value holds PII or "
    "the event's raw id is quarantined (`pii_in_field`)",
}


def render_pii_table(schemas: Mapping[str, EventSchema] | None = None) -> str:
    """Every field with ``x-pii`` other than ``none``, across event types."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    rows = [
        [
            md.code(event_type),
            md.code(field.name),
            field.spec["x-pii"],
            handling(field, _PII_HANDLING).replace("—", "stored as sent"),
        ]
        for event_type, schema in schemas.items()
        for field in fields(schema.document)
        if field.spec.get("x-pii", "none") != "none"
    ]
    return md.table(["event type", "field", "PII class", "handling"], rows)


def render_pii_rules() -> str:
    """The PII constants of the code, as a list."""
    quarantine_keys = ", ".join(md.code(k) for k in sorted(pii.HASHED_KEYS))
    return "\n".join(
        [
            f"- Minimum key length: {pii.MIN_KEY_BYTES} bytes (`TELEMETRY_PII_KEY`).",
            f"- `pii_key_id` of data hashed with the public development key: "
            f"`{pii.key_id(pii.DEV_KEY)}`. Data with this key id is not pseudonymised.",
            "- Placeholders of the free-text scrubber: "
            + ", ".join(md.code(p) for p in pii.PLACEHOLDERS)
            + ".",
            f"- Keys whose values are hashed wherever they appear in a quarantined line: "
            f"{quarantine_keys}.",
            f"- Redacted text kept per quarantined line: at most "
            f"{size(IngestSettings().quarantine_text_bytes)} (`text_truncated` says when cut).",
        ]
    )


# The prefix the rendered lifecycle example uses (a lake at s3://<bucket>/lake).
_LIFECYCLE_EXAMPLE_PREFIX = "lake/"


def render_retention_windows() -> str:
    """The retention windows (``Windows``' defaults) by zone, with the setting that changes each."""
    w = Windows()
    rows = [
        [
            "`landing/`",
            "raw lines, raw identifiers",
            f"until {days(w.landing_days_after_materialised)} after the last partition reading "
            f"the date was materialised; then a `{RETIRED_MARKER}` tombstone",
            "`landing_days_after_materialised`",
        ],
        [
            "`events/` (all types but `error`)",
            "hashed and scrubbed events",
            days(w.events_days),
            "`events_days`",
        ],
        [
            "`events/event_type=error/`",
            "error events",
            f"{days(w.errors_days)}; then only `severity = 'critical'` rows, until "
            f"{days(w.critical_errors_days)}",
            "`errors_days`, `critical_errors_days`",
        ],
        ["`quarantine/`", "redacted rejected lines", days(w.quarantine_days), "`quarantine_days`"],
        ["`contracts/`", "contract violations", days(w.contracts_days), "`contracts_days`"],
        ["`quality/`", "contract rates per day", days(w.quality_days), "`quality_days`"],
        [
            "`ledger/`",
            "counts per landing file, no identifiers",
            days(w.ledger_days),
            "`ledger_days`",
        ],
        [
            "`rollups/`",
            "aggregates, no identifiers",
            f"{days(w.rollups_days)}, counted from the last day of the period",
            "`rollups_days`",
        ],
        ["`ops/`, `reports/`", "run reports, Data Docs", "not managed: kept", "—"],
    ]
    minimum = window().after
    return (
        md.table(["zone", "holds", "kept", "setting of the `retention` resource"], rows)
        + f"\n\nA window shorter than {days(minimum)} (the late-arrival window, "
        "`READS_DAYS_AFTER`) is refused: the run fails before it lists anything, naming the "
        "setting."
    )


def render_retention_lifecycle() -> str:
    """The S3 lifecycle configuration for the default windows, for a lake at ``s3://B/lake``."""
    configuration = lifecycle_configuration(_LIFECYCLE_EXAMPLE_PREFIX)
    return "```json\n" + json.dumps(configuration, indent=2) + "\n```"


def _region_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated:{re.escape(name)} -->\n).*?(\n<!-- /generated:{re.escape(name)} -->)",
        re.DOTALL,
    )


def splice(text: str, regions: Mapping[str, str]) -> str:
    """Replace the body of every ``<!-- generated:NAME -->`` region; refuses a missing marker."""
    for name, body in regions.items():
        pattern = _region_pattern(name)
        if len(pattern.findall(text)) != 1:
            raise DocsError(
                f"expected exactly one <!-- generated:{name} --> ... "
                f"<!-- /generated:{name} --> region"
            )
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def render_pii_page(current: str, schemas: Mapping[str, EventSchema] | None = None) -> str:
    """``docs/contracts/pii_retention.md``: the hand-written page with its regions regenerated."""
    return splice(
        current,
        {
            "pii-rules": render_pii_rules(),
            "pii-table": render_pii_table(schemas),
            "retention-windows": render_retention_windows(),
            "retention-lifecycle": render_retention_lifecycle(),
        },
    )
