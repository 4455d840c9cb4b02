"""A generated landing zone through real Dagster materialisations, checked against what the
generator says it wrote: exact counts, a balanced ledger, and no raw identifier at rest."""

from __future__ import annotations

import gzip
import re
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBResource, LakeResource, PiiResource
from pipelines.lib import pii
from pipelines.lib.ledger import audit_ledger
from pipelines.lib.sample import SampleConfig, generate
from pipelines.lib.schemas import event_types
from pipelines.lib.storage import Lake

START = date(2025, 6, 2)
TEST_KEY = "test-key-0123456789-abcdefghij-0123456789"  # >= 32 bytes, not the dev key


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sample") / "lake"
    config = SampleConfig(start=START, days=3, requests_per_day=300, pii_in_errors=0.5)
    manifest = generate(config, str(root))
    partitions = daily_partitions()
    assets = [build_ingest_assets(partitions), build_ledger_check(partitions)]
    resources = {
        "lake": LakeResource(root=str(root)),
        "pii": PiiResource(key=TEST_KEY),
        "duckdb": DuckDBResource(memory_limit="1GB"),
    }
    checks = {}
    for key in sorted(manifest["partitions"]):
        result = dg.materialize(assets, resources=resources, partition_key=key)
        assert result.success
        checks[key] = result.get_asset_check_evaluations()
    return {"root": root, "manifest": manifest, "checks": checks}


def _ledger(root: Path) -> list[dict]:
    return pq.read_table(root / "ledger", partitioning="hive").to_pylist()


def test_every_partition_matches_the_generator_exactly(sample):
    root: Path = sample["root"]
    ledger = _ledger(root)
    for key, expected in sample["manifest"]["partitions"].items():
        day = date.fromisoformat(key)
        rows = [r for r in ledger if str(r["event_date"]) == key]
        for event_type in event_types():
            path = root / f"events/event_type={event_type}/event_date={key}/part-00000.parquet"
            stored = pq.ParquetFile(path).metadata.num_rows
            assert stored == expected["rows"].get(event_type, 0), (key, event_type)
        assert sum(r["duplicates"] for r in rows) == expected["duplicates"], key
        quarantined = {
            reason: n
            for reason in expected["quarantined"] | {r: 0 for r in ("late_arrival",)}
            if (n := sum(r[f"quarantined_{reason}"] for r in rows))
        }
        assert quarantined == expected["quarantined"], key
        assert audit_ledger(Lake(str(root)), day).passed


def test_ledger_check_passes_and_every_file_adds_up(sample):
    for key, evaluations in sample["checks"].items():
        [evaluation] = evaluations
        assert evaluation.check_name == LEDGER_BALANCES and evaluation.passed, key
    taken: dict[str, int] = {}
    for row in _ledger(sample["root"]):
        taken[row["landing_file"]] = taken.get(row["landing_file"], 0) + row["lines_taken"]
    expected = {path: f["lines"] for path, f in sample["manifest"]["files"].items()}
    assert taken == expected


def test_rows_are_hashed_with_the_configured_key(sample):
    root: Path = sample["root"]
    table = pq.read_table(root / f"events/event_type=request/event_date={START}")
    key_ids = set(table.column("pii_key_id").to_pylist())
    assert key_ids == {pii.key_id(TEST_KEY.encode())}
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
    root: Path = sample["root"]
    landing = "\n".join(
        (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).decode(
            "utf-8", "replace"
        )
        for p in (root / "landing").rglob("*.jsonl*")
    )
    raw_ids = set(re.findall(r'"(?:user_id|session_id)":"([^"]+)"', landing))
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", landing))
    phones = set(re.findall(r"\+\d[\d ]{8,}\d", landing))
    assert raw_ids and emails and phones  # the generator did plant them

    stored = [p for d in ("events", "quarantine", "ledger") for p in (root / d).rglob("*.parquet")]
    assert stored
    for path in stored:
        text = "\n".join(s for row in pq.read_table(path).to_pylist() for s in _strings(row))
        leaked = {i for i in raw_ids if i in text} | {e for e in emails | phones if e in text}
        assert not leaked, f"{path}: {sorted(leaked)[:5]}"
