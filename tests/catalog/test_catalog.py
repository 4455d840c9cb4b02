"""The analysts' catalog: a DuckDB file of views over a real lake, read back by Python duckdb and
by the duckdb-cli shell the README tells analysts to install (an older storage format than the
Python package writes by default), including the README's example queries."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.defs.automation.conditions import automated_jobs
from pipelines.defs.catalog.assets import CATALOG_JOB, build_catalog_asset
from pipelines.defs.resources import CatalogResource, LakeResource, defs
from pipelines.lib.catalog import views as catalog
from pipelines.lib.catalog.views import ViewSpec, catalog_version, view_specs, write_catalog
from pipelines.lib.ingest.partition import ingest_partition
from pipelines.lib.lake.paths import PROJECT_ROOT, default_catalog_path
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate
from tests.conftest import KEY

SHELL = Path(sys.executable).parent / "duckdb"  # from duckdb-cli, the test extra
START = date(2025, 6, 2)
# A week's rollups need every day of it ingested, and the README's queries read weekly rollups.
ROLLUPS = ("traffic_daily", "errors_daily", "traffic_weekly", "experiments_weekly")
QUERIES_START, QUERIES_END = "<!-- analyst-queries:start -->", "<!-- analyst-queries:end -->"


def build_lake(root: Path) -> Lake:
    """One sample day (2025-06-02) ingested with its neighbours and the whole week, and the
    rollups the README's queries read; no contracts, so quality's contract views stay empty.
    Errors are 5x the default rate so 100 requests surely yield some for the error query."""
    config = SampleConfig(start=START, days=1, requests_per_day=100, error_rate=0.05)
    generate(config, str(root))
    lake = Lake(str(root))
    for n in range(-1, 7):  # 2025-06-01 .. 2025-06-08
        ingest_partition(lake, START + timedelta(days=n), KEY)
    for n in range(7):  # the week is merged from its days' traffic rollups
        for name in ("traffic_daily", "traffic_parts"):
            build_rollup(lake, MODELS_BY_NAME[name], START + timedelta(days=n))
    for name in ROLLUPS:
        build_rollup(lake, MODELS_BY_NAME[name], START)
    return lake


def _readme_queries(text: str) -> list[str]:
    """The ```sql blocks between the analyst-queries markers of a README."""
    assert QUERIES_START in text and QUERIES_END in text, "README lacks the analyst-queries markers"
    section = text.split(QUERIES_START, 1)[1].split(QUERIES_END, 1)[0]
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)]


def _shell(catalog_path: Path, sql: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``sql`` in the analysts' shell, read-only, as CSV, from ``cwd``."""
    return subprocess.run(
        [str(SHELL), "-readonly", "-csv", str(catalog_path)],
        input=sql,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _parquet_rows(root: Path, rel_glob: str) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in root.glob(rel_glob))


def _views(path: Path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select schema_name || '.' || view_name, sql from duckdb_views() where not internal"
        ).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    # A quote and a space in the path: the views' path literals must be quoted, not just spliced.
    root = tmp_path_factory.mktemp("analyst's lake") / "lake"
    return build_lake(root), root


@pytest.fixture
def written(built: tuple[Lake, Path], tmp_path: Path) -> tuple[Path, catalog.CatalogResult]:
    lake, _ = built
    path = tmp_path / "data" / "lake.duckdb"
    return path, write_catalog(lake, str(path))


def test_every_view_counts_the_rows_of_its_parquet(built, written):
    _, root = built
    path, result = written
    specs = {s.qualified: s for s in view_specs()}
    assert result.path == str(path)
    assert set(result.written) == {n for n, s in specs.items() if any(root.glob(s.glob))}
    events = {f"events.{t}" for t in ("request", "ranking", "impression", "click", "error")}
    rollups = {f"rollups.{name}" for name in ROLLUPS}
    assert events | rollups | {"quality.ledger", "quality.quarantine"} <= set(result.written)
    with duckdb.connect(str(path), read_only=True) as con:
        for name in result.written:
            spec = specs[name]
            (count,) = con.execute(f"select count(*) from {name}").fetchone()
            assert count == _parquet_rows(root, spec.glob), name
            key_type = con.execute(
                "select data_type from duckdb_columns() where schema_name = ? and "
                "table_name = ? and column_name = ?",
                [spec.schema, spec.name, spec.partition_key],
            ).fetchone()
            assert key_type == ("DATE",), name
        (day,) = con.execute(
            "select count(*) from events.click where event_date = ?", [START]
        ).fetchone()
    assert day == _parquet_rows(root, f"events/event_type=click/event_date={START}/*.parquet") > 0


def test_the_analysts_shell_opens_it_from_another_folder(built, written, tmp_path: Path):
    _, root = built
    path, _ = written
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = subprocess.run([str(SHELL), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("v1.5.6"), version.stdout
    result = _shell(
        path,
        "select count(*) as clicks from events.click where event_date = date '2025-06-02';",
        elsewhere,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    expected = _parquet_rows(root, "events/event_type=click/event_date=2025-06-02/*.parquet")
    assert result.stdout.split() == ["clicks", str(expected)]


def test_the_readme_queries_run_in_the_shell(written, tmp_path: Path):
    path, _ = written
    queries = _readme_queries((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(queries) == 7
    for sql in queries:
        result = _shell(path, sql, tmp_path)
        assert result.returncode == 0 and not result.stderr, f"{sql}\n{result.stderr}"
        assert len(result.stdout.strip().splitlines()) >= 2, f"{sql}\nno rows: {result.stdout}"


def test_tables_without_files_get_no_view_and_are_listed(built, written, tmp_path: Path):
    path, result = written
    assert "quality.contract_violations" in result.skipped  # contracts never ran here
    assert "rollups.traffic_monthly" in result.skipped
    assert "contracts/*/*.parquet" in result.skipped["quality.contract_violations"]
    assert set(result.written) | set(result.skipped) == {s.qualified for s in view_specs()}
    assert set(_views(path)) == set(result.written)

    empty = write_catalog(Lake(str(tmp_path / "no-lake")), str(tmp_path / "empty.duckdb"))
    assert empty.written == [] and set(empty.skipped) == {s.qualified for s in view_specs()}
    shell = _shell(tmp_path / "empty.duckdb", "select schema_name from duckdb_schemas();", tmp_path)
    assert shell.returncode == 0, shell.stderr
    assert {"events", "rollups", "quality"} <= set(shell.stdout.split())


def test_rewriting_is_atomic_and_idempotent(built, written, monkeypatch: pytest.MonkeyPatch):
    lake, _ = built
    path, first = written
    before = _views(path)
    stale = path.parent / f".{path.name}.deadbeef0000.tmp"  # left by a crashed earlier write
    stale.write_bytes(b"junk")
    with duckdb.connect(str(path), read_only=True) as reader:  # an analyst with it open
        second = write_catalog(lake, str(path))
        assert reader.execute("select count(*) from events.request").fetchone()[0] > 0
    assert second.written == first.written and second.skipped == first.skipped
    assert _views(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]

    # A read-write session killed before its checkpoint leaves a WAL of the old file behind.
    killed = f"""
import duckdb, os
con = duckdb.connect({str(path)!r}, config={{"checkpoint_threshold": "1TB"}})
con.execute("create view main.mine as select 42 as x")
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", killed], check=True, timeout=60)
    assert path.with_name(f"{path.name}.wal").exists()
    write_catalog(lake, str(path))
    assert _views(path) == before

    def broken(spec: ViewSpec, root: str, *args: object) -> str:
        raise RuntimeError("disk full")

    content = path.read_bytes()
    monkeypatch.setattr(catalog, "_view_sql", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_catalog(lake, str(path))
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_on_s3_the_views_read_s3_urls():
    # Only the text: DuckDB here has no httpfs; analysts load it to query these views.
    statements = catalog.view_statements(Lake("s3://telemetry/lake"))
    assert len(statements) == len(view_specs())
    for sql in statements:
        assert re.search(r"read_parquet\('s3://telemetry/lake/[^']+\.parquet'", sql), sql
    click = "'s3://telemetry/lake/events/event_type=click/*/*.parquet'"
    assert any(click in sql for sql in statements)


def test_names_are_checked_and_the_version_follows_the_set_of_views(tmp_path: Path):
    specs = view_specs()
    assert (
        catalog_version(specs)
        == catalog_version()
        == build_catalog_asset().code_versions_by_key[dg.AssetKey("catalog")]
    )
    assert catalog_version(specs[:-1]) != catalog_version(specs)
    bad = ViewSpec("events", 'click" as select 1; --', "events/x/*.parquet", "event_date", "")
    with pytest.raises(ValueError, match="identifier"):
        catalog.view_statements(Lake(str(tmp_path)), [bad])


def test_the_asset_writes_the_catalog_and_reports_it(built, tmp_path: Path):
    _, root = built
    path = tmp_path / "lake.duckdb"
    asset = build_catalog_asset()
    result = dg.materialize(
        [asset],
        resources={
            "lake": LakeResource(root=str(root)),
            "catalog": CatalogResource(path=str(path)),
        },
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("catalog")
    metadata = materialization.metadata
    assert metadata["path"].value == str(path)
    assert "events.click" in metadata["views_written"].value
    assert "quality.contract_rates" in metadata["views_skipped"].value
    assert set(_views(path)) == set(metadata["views_written"].value)


def test_the_automation_sensor_refreshes_the_catalog_daily_under_a_named_job(tmp_path: Path):
    job = next(j for j in automated_jobs() if j.name == f"{CATALOG_JOB}_automated")
    definitions = dg.Definitions(
        assets=[build_catalog_asset()],
        jobs=[job],
        resources={"lake": LakeResource(root=str(tmp_path)), "catalog": CatalogResource()},
    )

    def requested(instance, at, cursor=None):
        result = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, evaluation_time=at, cursor=cursor
        )
        runs = {r.key for r in result.results if not r.true_subset.is_empty}
        return runs, result.cursor

    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="catalog"))
        runs, cursor = requested(instance, datetime(2025, 6, 2, 6, tzinfo=UTC))
        assert runs == set()
        # The 06:30 tick asks for one run of the named job, once.
        runs, cursor = requested(instance, datetime(2025, 6, 2, 6, 31, tzinfo=UTC), cursor)
        assert runs == {dg.AssetJobKey(job.name)}
        runs, cursor = requested(instance, datetime(2025, 6, 2, 6, 32, tzinfo=UTC), cursor)
        assert runs == set()


def test_the_catalog_path_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    assert CatalogResource().catalog_path() == default_catalog_path()
    monkeypatch.delenv("TELEMETRY_CATALOG", raising=False)
    assert defs().resources["catalog"].path is None
    monkeypatch.setenv("TELEMETRY_CATALOG", "/srv/analysts/lake.duckdb")
    assert isinstance(defs().resources["catalog"].path, dg.EnvVar)
