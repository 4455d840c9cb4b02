"""The S3 lifecycle configuration equivalent to the retention windows, for a lake on S3: the JSON
``aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration`` takes.

Objects move through the seed's tiers, hot (STANDARD) -> warm (STANDARD_IA at 30 days) -> cold
(GLACIER_IR at 90 days), as far as they live, and expire at their table's window. What lifecycle
rules cannot express stays with the retention job (``lib/maintenance/retention.py``):

* an object's age counts from when it was written, not from its event date (a backfill or a re-run
  restarts the clock), so a rule may keep data longer than the window, never shorter;
* a rule expires whole objects: the critical rows inside an error partition cannot outlive the
  others, so error objects expire at the critical window and the job trims them earlier;
* landing files wait for the partitions that read them to be materialised: there is no landing rule.

    python -m pipelines.lib.maintenance.lifecycle s3://bucket/prefix > lifecycle.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pipelines.lib.maintenance.retention import Windows
from pipelines.lib.schemas.registry import event_types

# (storage class, days after the object was written): the seed's warm and cold tiers.
TIERS = (("STANDARD_IA", 30), ("GLACIER_IR", 90))
# Parts of an interrupted multipart upload (s3fs uploads big files in parts) are invisible and
# billed until aborted.
ABORT_MULTIPART_DAYS = 7


@dataclass(frozen=True)
class Expiry:
    rule_id: str
    prefix: str  # relative to the lake root
    days: int


def expiries(windows: Windows) -> list[Expiry]:
    """Every prefix a rule expires, with its table's window (the job's ``Windows``)."""
    rules = [
        Expiry(
            f"events-{event_type}",
            f"events/event_type={event_type}/",
            windows.days_of(f"events/{event_type}"),
        )
        for event_type in event_types()
    ]
    rules += [
        Expiry(zone, f"{zone}/", windows.days_of(zone))
        for zone in ("quarantine", "contracts", "quality", "ledger", "rollups")
    ]
    return rules


def split_root(root: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the prefix is empty at the
    bucket's root."""
    if not root.startswith("s3://"):
        raise ValueError(f"{root!r} is not an s3:// lake root: lifecycle rules are for S3")
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def lifecycle_configuration(prefix: str, windows: Windows | None = None) -> dict:
    """The bucket lifecycle configuration for a lake whose keys start with ``prefix``."""
    windows = (windows or Windows()).validate()
    rules = []
    for expiry in expiries(windows):
        rule: dict = {
            "ID": f"telemetry-lake-{expiry.rule_id}",
            "Filter": {"Prefix": prefix + expiry.prefix},
            "Status": "Enabled",
        }
        # S3 refuses a transition on or after the expiration day.
        transitions = [
            {"Days": days, "StorageClass": storage_class}
            for storage_class, days in TIERS
            if days < expiry.days
        ]
        if transitions:
            rule["Transitions"] = transitions
        rule["Expiration"] = {"Days": expiry.days}
        rules.append(rule)
    rules.append(
        {
            "ID": "telemetry-lake-abort-incomplete-uploads",
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }
    )
    return {"Rules": rules}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m pipelines.lib.maintenance.lifecycle s3://bucket/prefix",
            file=sys.stderr,
        )
        return 2
    _, prefix = split_root(args[0])
    print(json.dumps(lifecycle_configuration(prefix), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
