"""The S3 lifecycle rules follow the retention windows, and a real S3 API accepts them."""

from __future__ import annotations

import boto3
import pytest

from pipelines.lib.maintenance.lifecycle import lifecycle_configuration, split_root
from pipelines.lib.maintenance.retention import Windows
from tests.conftest import new_bucket


def _rules(prefix: str = "lake/") -> dict[str, dict]:
    return {r["ID"]: r for r in lifecycle_configuration(prefix)["Rules"]}


def test_rules_follow_the_windows_and_tiers() -> None:
    rules = _rules()
    click = rules["telemetry-lake-events-click"]
    assert click["Filter"] == {"Prefix": "lake/events/event_type=click/"}
    assert click["Transitions"] == [{"Days": 30, "StorageClass": "STANDARD_IA"}]
    assert click["Expiration"] == {"Days": 90}
    # Error objects live as long as their critical rows; the job trims them at 30 days.
    assert rules["telemetry-lake-events-error"]["Expiration"] == {"Days": 90}
    assert rules["telemetry-lake-quarantine"]["Expiration"] == {"Days": 30}
    assert "Transitions" not in rules["telemetry-lake-quarantine"]
    assert rules["telemetry-lake-rollups"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 90, "StorageClass": "GLACIER_IR"},
    ]
    assert rules["telemetry-lake-ledger"]["Expiration"] == {"Days": 400}
    prefixes = {r["Filter"]["Prefix"] for r in rules.values()}
    # Landing waits for its partitions (the job); ops/ and reports/ are not managed.
    assert not any(p.startswith(("lake/landing", "lake/ops", "lake/reports")) for p in prefixes)
    assert rules["telemetry-lake-abort-incomplete-uploads"]["Filter"] == {"Prefix": "lake/"}
    assert len(rules) == 5 + 5 + 1


def test_rules_follow_a_changed_window_and_refuse_a_short_one() -> None:
    rules = lifecycle_configuration("", Windows(events_days=20))["Rules"]
    click = next(r for r in rules if r["ID"] == "telemetry-lake-events-click")
    assert click["Expiration"] == {"Days": 20} and "Transitions" not in click
    assert click["Filter"] == {"Prefix": "events/event_type=click/"}
    with pytest.raises(ValueError, match=r"retention\.rollups_days"):
        lifecycle_configuration("", Windows(rollups_days=1))


def test_split_root() -> None:
    assert split_root("s3://bucket/some/lake/") == ("bucket", "some/lake/")
    assert split_root("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://"):
        split_root("/data/lake")


def test_s3_accepts_the_configuration(s3_endpoint: str, s3_credentials: None) -> None:
    bucket = new_bucket(s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    configuration = lifecycle_configuration("lake/")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=configuration)
    stored = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {r["ID"]: r["Expiration"]["Days"] for r in stored if "Expiration" in r} == {
        r["ID"]: r["Expiration"]["Days"] for r in configuration["Rules"] if "Expiration" in r
    }
    rollups = next(r for r in stored if r["ID"] == "telemetry-lake-rollups")
    assert rollups["Filter"] == {"Prefix": "lake/rollups/"}
    assert [t["StorageClass"] for t in rollups["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
