"""Partner bundles: a month's viewer-tier rollups written through a real Dagster materialisation
into a tmp_path lake, checked by verify_bundle, which catches one flipped byte in any file and a
missing or extra file; no bundled row covers fewer than k users."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.defs.bundles.assets import build_partner_bundle_asset
from pipelines.defs.keys import PARTNER_BUNDLE
from pipelines.defs.resources import CatalogResource, DuckDBSettings, LakeResource
from pipelines.lib.bundles.partner_bundle import (
    MANIFEST,
    SUMS,
    BundleError,
    build_bundle,
    bundle_dir,
    bundle_periods,
    verify_bundle,
)
from pipelines.lib.catalog import tiers
from pipelines.lib.catalog.views import write_catalog
from pipelines.lib.ingest.partition import ingest_partition
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import DAY, GRAIN_KEYS, MODELS, MONTH, WEEK, build_rollup
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from tests.conftest import KEY

# February 2021 starts on a Monday and ends on a Sunday: four whole weeks, so the month's
# rollups need only its own 28 days (the straddling case is tested on the partition mapping).
MONTH_START = date(2021, 2, 1)
DAYS = [MONTH_START + timedelta(days=n) for n in range(28)]
FILES = [f"{name}.parquet" for name in tiers.USER_COUNT_COLUMNS]


@pytest.fixture(scope="module")
def first_date():
    with pytest.MonkeyPatch.context() as patch:
        # The partitions (and the bundle's history floor) start with the month.
        patch.setenv("TELEMETRY_FIRST_DATE", MONTH_START.isoformat())
        yield MONTH_START


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, first_date) -> Lake:
    root = str(tmp_path_factory.mktemp("bundles") / "lake")
    generate(SampleConfig(start=MONTH_START, days=28, requests_per_day=40), root)
    lake = Lake(root)
    for day in DAYS:
        ingest_partition(lake, day, KEY)
    for day in DAYS:  # weeks and the month are merged from their days
        for model in (m for m in MODELS if m.grain == DAY):
            build_rollup(lake, model, day)
    for model in (m for m in MODELS if m.grain != DAY):
        for start in bundle_periods(MONTH_START)[model.grain]:
            build_rollup(lake, model, start)
    return lake


@pytest.fixture(scope="module")
def k(lake) -> int:
    """A k with daily traffic rows below and exactly at it, from the data."""
    table = pq.read_table(lake.path("rollups/traffic_daily"), columns=["distinct_users"])
    values = sorted({v for v in table.column("distinct_users").to_pylist() if v is not None})
    return next(v for v in values if v >= tiers.MIN_VIEWER_MIN_USERS and v > values[0])


@pytest.fixture(scope="module")
def bundle(lake, k, first_date) -> Path:
    result = dg.materialize(
        [build_partner_bundle_asset()],
        resources={
            "lake": LakeResource(root=lake.root),
            "catalog": CatalogResource(viewer_min_users=k),
            "duckdb": DuckDBSettings(memory_limit="1GB"),
        },
        partition_key=MONTH_START.isoformat(),
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node(PARTNER_BUNDLE)
    assert materialization.metadata["viewer_min_users"].value == k
    assert materialization.metadata["rows_withheld"].value > 0
    return Path(lake.path(bundle_dir(MONTH_START)))


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle.name
    shutil.copytree(bundle, target)
    return target


def _cli(location: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.verify_bundle", str(location)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_bundle_holds_every_viewer_file_a_manifest_and_checksums(bundle):
    assert bundle.name == "2021-02"
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES, MANIFEST, SUMS])
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["bundle"] == "2021-02" and manifest["tier"] == "viewer"
    by_name = {f["name"]: f for f in manifest["files"]}
    assert set(by_name) == set(FILES)
    for name, entry in by_name.items():
        assert pq.ParquetFile(bundle / name).metadata.num_rows == entry["rows"]
        assert entry["schema"][0]["name"] and len(entry["sha256"]) == 64
    assert by_name["traffic_weekly.parquet"]["periods"] == [
        "2021-02-01",
        "2021-02-08",
        "2021-02-15",
        "2021-02-22",
    ]
    assert len(by_name["traffic_daily.parquet"]["periods"]) == 28
    sums = (bundle / SUMS).read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == sorted([*FILES, MANIFEST])


def test_no_bundled_row_covers_fewer_than_k_users_and_rows_at_k_are_kept(lake, bundle, k):
    manifest = json.loads((bundle / MANIFEST).read_text())
    kept_at_k = 0
    for entry in manifest["files"]:
        column = tiers.USER_COUNT_COLUMNS[entry["model"]]
        assert entry["user_count_column"] == column
        bundled = pq.read_table(bundle / entry["name"])
        counts = bundled.column(column).to_pylist()
        assert all(c is not None and c >= k for c in counts), entry["name"]
        kept_at_k += counts.count(k)
        # Exactly the lake's rows of those periods that reach k, with their period key.
        source = pq.read_table(lake.path(f"rollups/{entry['model']}"))
        source_counts = source.column(column).to_pylist()
        eligible = sum(1 for c in source_counts if c is not None and c >= k)
        assert entry["rows"] == eligible == bundled.num_rows, entry["name"]
        assert entry["rows_withheld"] == len(source_counts) - eligible
        assert GRAIN_KEYS[entry["grain"]] in bundled.column_names
    assert kept_at_k > 0


def test_the_bundle_equals_the_viewer_catalog_of_the_month(lake, bundle, k, tmp_path):
    path = tmp_path / "viewer.duckdb"
    write_catalog(lake, str(path), tier=tiers.VIEWER, viewer_min_users=k)
    with duckdb.connect(str(path), read_only=True) as con:
        for name in tiers.USER_COUNT_COLUMNS:
            (rows,) = con.execute(f"select count(*) from rollups.{name}").fetchone()
            assert rows == pq.ParquetFile(bundle / f"{name}.parquet").metadata.num_rows, name


def test_verify_passes_and_a_rebuild_writes_the_same_bytes(lake, bundle, k):
    verified = verify_bundle(str(bundle))
    assert verified.bundle == "2021-02" and verified.files == len(FILES)
    before = (bundle / SUMS).read_bytes()
    build_bundle(lake, MONTH_START, viewer_min_users=k, first_date=MONTH_START)
    assert (bundle / SUMS).read_bytes() == before
    cli = _cli(bundle)
    assert cli.returncode == 0 and "OK" in cli.stdout, cli.stderr


@pytest.mark.parametrize("name", [*FILES, MANIFEST, SUMS])
def test_one_flipped_byte_in_any_file_fails_naming_it(bundle, tmp_path, name):
    copy = _copy(bundle, tmp_path)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(BundleError) as caught:
        verify_bundle(str(copy))
    assert caught.value.file == name, str(caught.value)
    cli = _cli(copy)
    assert cli.returncode == 1 and name in cli.stderr, cli.stderr


def test_a_missing_or_extra_file_fails_naming_it(bundle, tmp_path):
    copy = _copy(bundle, tmp_path / "missing")
    (copy / "traffic_hourly.parquet").unlink()
    with pytest.raises(BundleError, match=r"traffic_hourly\.parquet: missing"):
        verify_bundle(str(copy))
    copy = _copy(bundle, tmp_path / "extra")
    (copy / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match=r"notes\.txt: extra file"):
        verify_bundle(str(copy))
    (copy / "notes.txt").unlink()
    (copy / MANIFEST).unlink()
    cli = _cli(copy)
    assert cli.returncode == 1 and "manifest.json: missing" in cli.stderr


def test_a_missing_rollup_period_fails_the_bundle_naming_it(lake, k, tmp_path):
    partial = Lake(str(tmp_path / "lake"))
    shutil.copytree(lake.path("rollups"), partial.path("rollups"))
    shutil.rmtree(partial.path("rollups/errors_daily/event_date=2021-02-10"))
    with pytest.raises(FileNotFoundError, match="errors_daily/event_date=2021-02-10"):
        build_bundle(partial, MONTH_START, viewer_min_users=k, first_date=MONTH_START)
    assert not Path(partial.path("bundles")).exists()


def test_a_month_bundles_the_weeks_its_asset_depends_on(monkeypatch, tmp_path):
    # June 2025 starts on a Sunday and ends on a Monday: weeks from 2025-05-26 to 2025-06-30.
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("TELEMETRY_FIRST_DATE", "2025-01-01")  # not this module's 2021 one
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    june = date(2025, 6, 1)
    parents = graph.get_parents_partitions(dg.AssetKey(PARTNER_BUNDLE), june.isoformat())
    by_asset: dict[str, set[str]] = {}
    for parent in parents.parent_partitions:
        by_asset.setdefault(parent.asset_key.to_user_string(), set()).add(parent.partition_key)
    assert set(by_asset) == set(tiers.USER_COUNT_COLUMNS)
    periods = bundle_periods(june, date(2025, 1, 1))
    grains = {m.name: m.grain for m in MODELS}
    for name, keys in by_asset.items():
        assert keys == {d.isoformat() for d in periods[grains[name]]}, name
    assert min(periods[WEEK]) == date(2025, 5, 26) and max(periods[WEEK]) == date(2025, 6, 30)
    assert periods[MONTH] == [june] and len(periods[DAY]) == 30
    # The first month of the lake has no week before the first partition date.
    january = bundle_periods(date(2025, 1, 1), date(2025, 1, 1))
    assert january[WEEK][0] == date(2025, 1, 6)
