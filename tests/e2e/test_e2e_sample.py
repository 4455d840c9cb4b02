"""A generated landing zone through real Dagster materialisations, checked against what the
generator says it wrote: exact counts, a balanced ledger, and no raw identifier at rest; then the
landing sensor's decisions, an access export and an erasure on the same lake.
Runs twice: on a local folder and on a real S3 API (a moto server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.contracts.assets import build_contracts_asset
from pipelines.defs.contracts.checks import build_family_check
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.partitions import daily_partitions, monthly_partitions, weekly_partitions
from pipelines.defs.reports.assets import build_report_asset
from pipelines.defs.resources import (
    ContractsResource,
    DuckDBSettings,
    LakeResource,
    PiiResource,
    ReportsResource,
    RollupsResource,
    SloResource,
)
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.defs.slo.checks import build_slo_checks
from pipelines.lib.automation.landing_watch import decide, list_landing
from pipelines.lib.contracts.rules import COMPLETENESS, CONSISTENCY, FAMILIES, TIMELINESS, VALIDITY
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.landing import reading_partitions
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.paths import (
    DATA_DOCS_DIR,
    contracts_dir,
    contracts_file,
    daily_report_dir,
    events_file,
    ledger_dir,
    quality_file,
    weekly_report_dir,
)
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.exports import QUARANTINE, export_user
from pipelines.lib.privacy.requests import parse_request
from pipelines.lib.reports.build import HTML_FILE, MARKDOWN_FILE
from pipelines.lib.reports.data import DAILY, WEEKLY
from pipelines.lib.rollups.run import (
    DAY,
    MODELS,
    MODELS_BY_NAME,
    MONTH,
    WEEK,
    build_rollup,
    rollup_dir,
)
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from pipelines.lib.schemas.registry import event_types
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
        "duckdb": DuckDBSettings(memory_limit="1GB"),
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


def _all_traffic(lake, name: str, grain: str, start: date) -> dict:
    rows = lake.read_partition(rollup_dir(name, grain, start)).to_pylist()
    [everything] = [r for r in rows if r["is_all_traffic"]]
    # The dimension rows split the same traffic: each event is counted in exactly one of them.
    for metric in ("requests", "clicks"):
        assert sum(r[metric] for r in rows if not r["is_all_traffic"]) == everything[metric]
    return everything


def test_weekly_and_monthly_rollups_merge_their_days(sample):
    lake, manifest = sample["lake"], sample["manifest"]
    resources = {**sample["resources"], "rollups": RollupsResource()}
    month_start = START.replace(day=1)
    june = [month_start + timedelta(days=n) for n in range(30)]
    week = [START + timedelta(days=n) for n in range(7)]
    # A week or a month needs every one of its days ingested: the days the sample left untouched
    # are ingested empty, directly, for speed (the sample's own days went through Dagster).
    keyring = resources["pii"].keyring()
    for day in june:
        if not lake.parquet_files(ledger_dir(day)):
            ingest_partition(lake, day, keyring, IngestSettings(memory_limit="1GB"))
    # The daily pieces the weeks and months are merged from, directly where the test above did
    # not build them through Dagster.
    for day in june:
        for name in ("traffic_daily", "traffic_parts"):
            if not lake.parquet_files(rollup_dir(name, DAY, day)):
                build_rollup(lake, MODELS_BY_NAME[name], day)
    for grain, partitions_def, key in (
        (WEEK, weekly_partitions(), START),
        (MONTH, monthly_partitions(), month_start),
    ):
        assets = [build_rollup_asset(m, partitions_def) for m in MODELS if m.grain == grain]
        result = dg.materialize(assets, resources=resources, partition_key=key.isoformat())
        assert result.success

    days = {day: _all_traffic(lake, "traffic_daily", DAY, day) for day in june}
    stored = {
        event_type: sum(p["rows"].get(event_type, 0) for p in manifest["partitions"].values())
        for event_type in event_types()
    }
    assert stored["request"] > 0 and stored["click"] > 0
    weekly = _all_traffic(lake, "traffic_weekly", WEEK, START)
    monthly = _all_traffic(lake, "traffic_monthly", MONTH, month_start)
    for metric in ("requests", "clicks"):
        assert weekly[metric] == sum(days[d][metric] for d in week)
        assert monthly[metric] == sum(days[d][metric] for d in june)
    # Every generated request is in this week and month.
    assert weekly["requests"] == monthly["requests"] == stored["request"]
    assert weekly["clicks"] == monthly["clicks"] == stored["click"]

    # Every request belongs to one experiment; each has a control and a treatment bucket.
    experiments = lake.read_partition(rollup_dir("experiments_weekly", WEEK, START)).to_pylist()
    assigned = {
        (e["experiment_id"], bucket)
        for e in manifest["config"]["experiments"]
        for bucket in e["buckets"]
    }
    assert {(r["experiment_id"], r["bucket"]) for r in experiments} == assigned
    assert sum(r["requests_assigned"] for r in experiments) == stored["request"]
    assert all(0 < r["requests"] <= r["requests_assigned"] for r in experiments)

    compliance = lake.read_partition(rollup_dir("compliance_monthly", MONTH, month_start))
    sections: dict[str, dict[str, int]] = {}
    for row in compliance.to_pylist():
        sections.setdefault(row["section"], {})[row["item"]] = row["item_count"]
    for item, count in sections["stored_rows"].items():
        assert count == stored[item.split("/")[0]], item
    assert {i.split("/")[0] for i in sections["stored_rows"]} == set(event_types())
    quarantined: dict[str, int] = {}
    for partition in manifest["partitions"].values():
        for reason, n in partition["quarantined"].items():
            quarantined[reason] = quarantined.get(reason, 0) + n
    assert sections["quarantined"] == quarantined
    duplicates = sum(p["duplicates"] for p in manifest["partitions"].values())
    assert sections["duplicates"] == {"exact_duplicate": duplicates}
    violations = sum(lake.partition_rows(contracts_dir(day)) for day in june)
    assert sum(sections.get("contract_violations", {}).values()) == violations


def test_slo_checks_and_reports_on_this_backend(sample):
    # After the weekly test above: every day of June is ingested and has its traffic_daily.
    lake = sample["lake"]
    resources = {**sample["resources"], "rollups": RollupsResource(), "slo": SloResource()}
    traffic_daily = build_rollup_asset(MODELS_BY_NAME["traffic_daily"], daily_partitions())
    checked = dg.materialize(
        [traffic_daily, build_slo_checks(daily_partitions())],
        resources=resources,
        partition_key=START.isoformat(),
    )
    assert checked.success
    evaluations = {e.check_name: e for e in checked.get_asset_check_evaluations()}
    day = _all_traffic(lake, "traffic_daily", DAY, START)
    assert len([n for n in evaluations if n.startswith(("slo_", "anomaly_"))]) == 16
    assert evaluations["slo_error_rate"].metadata["measured"].value == day["error_rate"]
    assert evaluations["slo_ctr"].metadata["measured"].value == day["ctr"]

    week = START  # a Monday
    # The weekly report reads every daily rollup of its days: build the ones still missing.
    for weekday in (week + timedelta(days=n) for n in range(7)):
        for model in (m for m in MODELS if m.grain == DAY):
            if not lake.parquet_files(rollup_dir(model.name, DAY, weekday)):
                build_rollup(lake, model, weekday)
    for kind, partitions_def, key, folder in (
        (DAILY, daily_partitions(), START, daily_report_dir(START)),
        (WEEKLY, weekly_partitions(), week, weekly_report_dir(week)),
    ):
        result = dg.materialize(
            [build_report_asset(kind, partitions_def)],
            resources={**resources, "reports": ReportsResource()},
            partition_key=key.isoformat(),
        )
        assert result.success
        [event] = result.get_asset_materialization_events()
        with lake.open(f"{folder}/{MARKDOWN_FILE}") as handle:
            assert event.materialization.metadata["report"].value == handle.read().decode()
        with lake.open(f"{folder}/{HTML_FILE}") as handle:
            html = handle.read().decode()
        requests = day if kind == DAILY else _all_traffic(lake, "traffic_weekly", WEEK, week)
        assert f'data-key="requests" data-value="{requests["requests"]}"' in html


def test_the_landing_sensor_an_export_and_an_erasure_on_this_backend(sample):
    # Last in the module: the erasure changes the lake the tests above read.
    lake, manifest = sample["lake"], sample["manifest"]
    listing = list_landing(lake)
    # The ingested days that read a landing file: the sample's, and any a test above added.
    ingested = {date.fromisoformat(d.removeprefix("event_date=")) for d in lake.list_dirs("ledger")}
    built = ingested & {d for dt in listing for d in reading_partitions(dt)}
    assert {date.fromisoformat(k) for k in manifest["partitions"]} <= built
    decision = decide(lake, listing, None, datetime(2026, 1, 1, tzinfo=UTC), min(built), _idle)
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
