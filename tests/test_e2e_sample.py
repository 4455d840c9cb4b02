"""A generated landing zone through real Dagster materialisations, checked against what the
generator says it wrote: exact counts, a balanced ledger, and no raw identifier at rest; then the
landing sensor's decisions, an access export and an erasure on the same lake.
Runs twice: on a local folder and on a real S3 API (a moto server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, date, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.contracts.assets import build_contracts_asset
from pipelines.defs.contracts.checks import build_family_check
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import (
    ContractsResource,
    DuckDBResource,
    LakeResource,
    PiiResource,
    RollupsResource,
)
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.lib import pii
from pipelines.lib.contracts.rules import COMPLETENESS, CONSISTENCY, FAMILIES, TIMELINESS, VALIDITY
from pipelines.lib.ledger import audit_ledger
from pipelines.lib.ops.landing_watch import decide, list_landing
from pipelines.lib.paths import DATA_DOCS_DIR, contracts_file, events_file, quality_file
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.exports import QUARANTINE, export_user
from pipelines.lib.privacy.requests import parse_request
from pipelines.lib.rollups.run import DAY, MODELS, rollup_dir
from pipelines.lib.sample import SampleConfig, generate
from pipelines.lib.schemas import event_types
from tests.conftest import new_bucket

START = date(2025, 6, 2)
TEST_KEY = "test-key-0123456789-abcdefghij-0123456789"  # >= 32 bytes, not the dev key


@pytest.fixture(scope="module", params=["local", "s3"])
def sample(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    endpoint = None
    if request.param == "s3":
        request.getfixturevalue("s3_credentials")
        endpoint = request.getfixturevalue("s3_endpoint")
        root = f"s3://{new_bucket(endpoint)}/lake"
        monkeypatch = pytest.MonkeyPatch()
        request.addfinalizer(monkeypatch.undo)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the generator's plain fsspec URL
    else:
        root = str(tmp_path_factory.mktemp("sample") / "lake")
    config = SampleConfig(start=START, days=3, requests_per_day=300, pii_in_errors=0.5)
    manifest = generate(config, root)
    partitions = daily_partitions()
    assets = [
        build_ingest_assets(partitions),
        build_ledger_check(partitions),
        build_contracts_asset(partitions),
        *[build_family_check(f, partitions) for f in FAMILIES],
    ]
    lake_resource = LakeResource(root=root, s3_endpoint_url=endpoint)
    resources = {
        "lake": lake_resource,
        "pii": PiiResource(key=TEST_KEY),
        "duckdb": DuckDBResource(memory_limit="1GB"),
        "contracts": ContractsResource(),
    }
    checks = {}
    # Every day's ingest first, then the contracts, which read the neighbouring days.
    for group in ("ingest", "contracts"):
        for key in sorted(manifest["partitions"]):
            result = dg.materialize(
                assets,
                selection=dg.AssetSelection.groups(group),
                resources=resources,
                partition_key=key,
            )
            assert result.success
            checks.setdefault(key, []).extend(result.get_asset_check_evaluations())
    return {
        "lake": lake_resource.lake(),
        "manifest": manifest,
        "checks": checks,
        "resources": resources,
    }


def _ledger(lake) -> list[dict]:
    return pq.read_table(lake.path("ledger"), filesystem=lake.fs, partitioning="hive").to_pylist()


def _rows(lake, rel: str) -> int:
    return pq.ParquetFile(lake.path(rel), filesystem=lake.fs).metadata.num_rows


def test_every_partition_matches_the_generator_exactly(sample):
    lake = sample["lake"]
    ledger = _ledger(lake)
    for key, expected in sample["manifest"]["partitions"].items():
        day = date.fromisoformat(key)
        rows = [r for r in ledger if str(r["event_date"]) == key]
        for event_type in event_types():
            stored = _rows(lake, events_file(event_type, day))
            assert stored == expected["rows"].get(event_type, 0), (key, event_type)
        assert sum(r["duplicates"] for r in rows) == expected["duplicates"], key
        quarantined = {
            reason: n
            for reason in {*expected["quarantined"], "late_arrival"}
            if (n := sum(r[f"quarantined_{reason}"] for r in rows))
        }
        assert quarantined == expected["quarantined"], key
        assert audit_ledger(lake, day).passed


def test_ledger_check_passes_and_every_file_adds_up(sample):
    for key, evaluations in sample["checks"].items():
        [evaluation] = [e for e in evaluations if e.check_name == LEDGER_BALANCES]
        assert evaluation.passed, key
    taken: dict[str, int] = {}
    for row in _ledger(sample["lake"]):
        taken[row["landing_file"]] = taken.get(row["landing_file"], 0) + row["lines_taken"]
    expected = {path: f["lines"] for path, f in sample["manifest"]["files"].items()}
    assert taken == expected


def test_rows_are_hashed_with_the_configured_key(sample):
    lake = sample["lake"]
    table = pq.read_table(lake.path(events_file("request", START)), filesystem=lake.fs)
    assert set(table.column("pii_key_id").to_pylist()) == {pii.key_id(TEST_KEY.encode())}
    assert all(re.fullmatch(r"[0-9a-f]{64}", u) for u in table.column("user_id").to_pylist())


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_no_raw_identifier_or_contact_detail_at_rest(sample):
    lake = sample["lake"]
    landing_files = [p for p in lake.fs.find(lake.path("landing")) if ".jsonl" in p]
    landing = "\n".join(
        (gzip.decompress(data) if path.endswith(".gz") else data).decode("utf-8", "replace")
        for path in landing_files
        for data in [lake.fs.cat_file(path)]
    )
    raw_ids = set(re.findall(r'"(?:user_id|session_id|usr_id)":"([^"]+)"', landing))
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", landing))
    phones = set(re.findall(r"\+\d[\d ]{8,}\d", landing))
    assert raw_ids and emails and phones  # the generator did plant them

    stored = [
        path
        for folder in ("events", "quarantine", "ledger", "contracts", "quality")
        for path in lake.fs.find(lake.path(folder))
        if path.endswith(".parquet")
    ]
    assert len(stored) >= 9
    texts = {
        path: "\n".join(
            s for row in pq.read_table(path, filesystem=lake.fs).to_pylist() for s in _strings(row)
        )
        for path in stored
    }
    docs = [p for p in lake.fs.find(lake.path(DATA_DOCS_DIR)) if p.endswith(".html")]
    assert docs
    texts.update({path: lake.fs.cat_file(path).decode() for path in docs})
    for path, text in texts.items():
        leaked = {i for i in raw_ids if i in text} | {e for e in emails | phones if e in text}
        assert not leaked, f"{path}: {sorted(leaked)[:5]}"


def _late_lines_by_event_date(lake) -> dict[str, int]:
    rows = pq.read_table(lake.path("quarantine"), filesystem=lake.fs, partitioning="hive")
    late = [r for r in rows.to_pylist() if r["reason"] == "late_arrival"]
    counts: dict[str, int] = {}
    for row in late:
        key = row["event_date_read"].isoformat()
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_contracts_find_exactly_the_generated_orphans_and_late_lines(sample):
    lake, manifest = sample["lake"], sample["manifest"]
    late = _late_lines_by_event_date(lake)
    assert sum(late.values()) > 0  # the generator did send some too late
    for key in manifest["partitions"]:
        day = date.fromisoformat(key)
        violations = pq.read_table(lake.path(contracts_file(day)), filesystem=lake.fs).to_pylist()
        by_family: dict[str, list[dict]] = {f: [] for f in FAMILIES}
        for row in violations:
            by_family[row["family"]].append(row)
        orphans = manifest["orphan_clicks"].get(key, 0)
        assert [r["rule"] for r in by_family[CONSISTENCY]] == ["click_has_impression"] * orphans
        assert by_family[COMPLETENESS] == [] and by_family[VALIDITY] == [], key
        assert len(by_family[TIMELINESS]) == late.get(key, 0), key
        quality = pq.read_table(lake.path(quality_file(day)), filesystem=lake.fs).to_pylist()
        rates = {q["family"]: q for q in quality if q["scope"] == "family"}
        assert rates[CONSISTENCY]["failed"] == orphans
        evaluations = {e.check_name: e for e in sample["checks"][key]}
        assert set(FAMILIES) <= set(evaluations)
        assert evaluations[CONSISTENCY].metadata["failed"].value == orphans


def test_daily_rollups_count_what_ingest_stored(sample):
    lake, manifest = sample["lake"], sample["manifest"]
    daily = [build_rollup_asset(m, daily_partitions()) for m in MODELS if m.grain == DAY]
    resources = {**sample["resources"], "rollups": RollupsResource()}
    for key, expected in sorted(manifest["partitions"].items()):
        result = dg.materialize(daily, resources=resources, partition_key=key)
        assert result.success
        traffic = lake.read_partition(rollup_dir("traffic_daily", DAY, date.fromisoformat(key)))
        everything = [r for r in traffic.to_pylist() if r["is_all_traffic"]]
        requests = expected["rows"].get("request", 0)
        # One all-traffic row whenever the day has any event (none for a day of rejected lines).
        assert len(everything) <= 1 and sum(r["requests"] for r in everything) == requests
        assert everything or not any(expected["rows"].values())
        hourly = lake.read_partition(rollup_dir("traffic_hourly", DAY, date.fromisoformat(key)))
        assert sum(hourly.column("requests").to_pylist()) == requests


def test_the_landing_sensor_an_export_and_an_erasure_on_this_backend(sample):
    # Last in the module: the erasure changes the lake the tests above read.
    lake, manifest = sample["lake"], sample["manifest"]
    built = {date.fromisoformat(k) for k in manifest["partitions"]}
    decision = decide(
        lake, list_landing(lake), None, datetime(2026, 1, 1, tzinfo=UTC), min(built), _idle
    )
    # A restarted sensor (no cursor) re-runs none of the built days: their ledgers list every file.
    assert not {run.day for run in decision.runs} & built
    assert {d for d, why in decision.skipped.items() if why.startswith("up to date")} == built

    with lake.open(next(iter(manifest["files"]))) as handle:
        data = handle.read()
    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    user = re.search(rb'"user_id":"([^"]+)"', text).group(1).decode()
    secret = TEST_KEY.encode()
    export = export_user(lake, user, [secret], datetime(2026, 1, 1, tzinfo=UTC))
    assert export.rows > 0 and lake.exists(f"{export.folder}/rows.jsonl")

    request = parse_request({"request_id": "r-e2e", "user_ids": [user]}, datetime.now(UTC))
    erasure = erase(lake, request, [secret])
    assert set(erasure.proof.values()) == {0}
    removed = erasure.rows_removed()
    events_exported = sum(n for t, n in export.counts.items() if t != QUARANTINE)
    assert sum(n for t, n in removed.items() if t.startswith("events/")) == events_exported
    assert not lake.exists(export.folder)
    assert all(audit_ledger(lake, day).passed for day in built)


def _idle(day: date) -> bool:
    return False
