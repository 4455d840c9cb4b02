"""Access tiers: each tier's catalog, opened by Python duckdb and by the analysts' duckdb 1.5.6
shell (``-readonly``), shows exactly what its tier allows: hidden columns are binder errors,
hidden tables are catalog errors, and the viewer's rollups hold no row below k users."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.defs.catalog.assets import build_catalog_asset
from pipelines.defs.resources import CatalogResource, LakeResource
from pipelines.lib.catalog import tiers
from pipelines.lib.catalog.views import view_specs, write_catalog, write_tier_catalogs
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import MODELS_BY_NAME, MONTH, build_rollup
from pipelines.lib.schemas.registry import event_types
from tests.catalog.test_catalog import SHELL, START, _readme_queries, _shell, build_lake

VIEWER_MODELS = sorted(tiers.USER_COUNT_COLUMNS)
# This lake holds one week: a month's viewer rows are checked on a whole month in test_bundles.py.
BUILT_VIEWER_MODELS = [m for m in VIEWER_MODELS if MODELS_BY_NAME[m].grain != MONTH]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("tiers") / "lake"
    lake = build_lake(root)
    build_rollup(lake, MODELS_BY_NAME["traffic_hourly"], START)  # a viewer model build_lake skips
    return lake, root


@pytest.fixture(scope="module")
def k(built) -> int:
    """A k with daily traffic rows below it and rows exactly at it, from the data itself."""
    _, root = built
    users = pq.read_table(root / "rollups" / "traffic_daily").column("distinct_users").to_pylist()
    values = sorted({u for u in users if u is not None})
    return next(v for v in values if v >= tiers.MIN_VIEWER_MIN_USERS and v > values[0])


@pytest.fixture(scope="module")
def catalogs(built, k, tmp_path_factory) -> dict[str, Path]:
    lake, _ = built
    base = tmp_path_factory.mktemp("catalogs") / "lake.duckdb"
    results = write_tier_catalogs(lake, str(base), viewer_min_users=k)
    return {tier: Path(r.path) for tier, r in results.items()}


def _columns(path: Path, schema: str, name: str) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [c[0] for c in con.execute(f"select * from {schema}.{name} limit 0").description]


def test_one_file_per_tier_beside_the_engineers(catalogs):
    engineer = catalogs[tiers.ENGINEER]
    assert engineer.name == "lake.duckdb"
    assert catalogs[tiers.ANALYST] == engineer.with_name("lake.analyst.duckdb")
    assert catalogs[tiers.VIEWER] == engineer.with_name("lake.viewer.duckdb")
    for tier, path in catalogs.items():
        shell = _shell(path, "select count(*) from duckdb_views() where not internal;", path.parent)
        assert shell.returncode == 0 and not shell.stderr, (tier, shell.stderr)


def test_the_analyst_tier_hides_free_text_and_key_ids_but_keeps_hashed_ids(catalogs):
    analyst, engineer = catalogs[tiers.ANALYST], catalogs[tiers.ENGINEER]
    assert tiers.scrubbed_fields("error") == ("message",)
    assert tiers.scrubbed_fields("request") == ("filters",)
    for event_type in event_types():
        full = _columns(engineer, "events", event_type)
        shown = _columns(analyst, "events", event_type)
        hidden = [*tiers.scrubbed_fields(event_type), "pii_key_id"]
        assert "pii_key_id" in full and set(tiers.scrubbed_fields(event_type)) <= set(full)
        assert shown == [c for c in full if c not in hidden and not c.startswith("pii_key_id")]
        assert "user_id" in shown and "event_date" in shown
        if "user_id_prev" in full:  # key rotation's bridge column is a hashed id: it stays
            assert "user_id_prev" in shown
    with duckdb.connect(str(analyst), read_only=True) as con:
        for sql in (
            "select message from events.error",
            "select filters from events.request",
            "select pii_key_id from events.click",
            "select text from quality.quarantine",
            "select pii_key_id from quality.ledger",
        ):
            with pytest.raises(duckdb.BinderException):
                con.execute(sql)
        assert con.execute("select count(user_id) from events.click").fetchone()[0] > 0
        assert con.execute("select count(reason) from quality.quarantine").fetchone()[0] > 0
        # Rollups and quality tables are all there.
        views = {
            r[0]
            for r in con.execute(
                "select view_name from duckdb_views() where not internal"
            ).fetchall()
        }
        assert {"traffic_parts", "traffic_daily", "ledger", "quarantine"} <= views


def test_the_analyst_shell_gets_binder_errors_for_hidden_columns(catalogs, tmp_path):
    analyst = catalogs[tiers.ANALYST]
    for sql in ("select message from events.error;", "select text from quality.quarantine;"):
        result = _shell(analyst, sql, tmp_path)
        assert result.returncode != 0 and "Binder Error" in result.stderr, result.stderr
    ok = _shell(analyst, "select count(distinct user_id) > 0 as ok from events.request;", tmp_path)
    assert ok.returncode == 0 and ok.stdout.split() == ["ok", "true"], ok.stderr


def test_the_readme_queries_run_on_the_analyst_catalog(catalogs, tmp_path):
    queries = _readme_queries((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    for sql in queries:
        result = _shell(catalogs[tiers.ANALYST], sql, tmp_path)
        assert result.returncode == 0 and not result.stderr, f"{sql}\n{result.stderr}"


def test_the_viewer_tier_is_rollups_with_a_user_count_only(built, catalogs, tmp_path):
    _, root = built
    viewer = catalogs[tiers.VIEWER]
    with duckdb.connect(str(viewer), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select schema_name from duckdb_schemas()").fetchall()}
        assert "rollups" in schemas and not {"events", "quality"} & schemas
        for sql in (
            "select * from events.click",
            "select * from quality.quarantine",
            "select * from rollups.traffic_parts",
        ):
            with pytest.raises(duckdb.CatalogException):
                con.execute(sql)
        views = {
            r[0]
            for r in con.execute(
                "select view_name from duckdb_views() where not internal"
            ).fetchall()
        }
    built_models = {p.name for p in (root / "rollups").iterdir()}
    assert views == set(tiers.USER_COUNT_COLUMNS) & built_models
    assert {"traffic_daily", "errors_daily", "traffic_weekly", "experiments_weekly"} <= views
    result = _shell(viewer, "select count(*) from events.click;", tmp_path)
    assert result.returncode != 0 and "does not exist" in result.stderr


@pytest.mark.parametrize("model", BUILT_VIEWER_MODELS)
def test_viewer_rows_below_k_are_withheld_and_rows_at_k_shown(built, catalogs, k, model):
    _, root = built
    column = tiers.USER_COUNT_COLUMNS[model]
    counts = pq.read_table(root / "rollups" / model).column(column).to_pylist()
    with duckdb.connect(str(catalogs[tiers.VIEWER]), read_only=True) as con:
        below = con.execute(f"select count(*) from rollups.{model} where {column} < ?", [k])
        assert below.fetchone() == (0,)
        (shown,) = con.execute(f"select count(*) from rollups.{model}").fetchone()
        (at_k,) = con.execute(
            f"select count(*) from rollups.{model} where {column} = ?", [k]
        ).fetchone()
    assert shown == sum(1 for c in counts if c is not None and c >= k)
    assert at_k == sum(1 for c in counts if c == k)
    if model == "traffic_daily":  # k was picked from its rows: some below, some exactly at k
        assert at_k > 0 and shown < len(counts)


def test_the_viewer_shell_sees_no_row_below_k(catalogs, k, tmp_path):
    sql = (
        f"select count(*) filter (where distinct_users < {k}) as below, "
        f"count(*) filter (where distinct_users = {k}) as at_k from rollups.traffic_daily;"
    )
    result = _shell(catalogs[tiers.VIEWER], sql, tmp_path)
    assert result.returncode == 0, result.stderr
    below, at_k = result.stdout.split()[-1].split(",")
    assert below == "0" and int(at_k) > 0


def test_a_key_id_column_in_later_files_stays_hidden_without_a_rebuild(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    folder = tmp_path / "lake" / "events" / "event_type=click"
    (folder / "event_date=2025-06-01").mkdir(parents=True)
    row = {"event_id": ["a"], "user_id": ["h1"], "pii_key_id": ["k1"]}
    pq.write_table(pa.table(row), folder / "event_date=2025-06-01" / "part-00000.parquet")
    [click] = [s for s in view_specs() if s.qualified == "events.click"]
    path = tmp_path / "analyst.duckdb"
    write_catalog(lake, str(path), specs=[click], tier=tiers.ANALYST)
    # Rotation starts writing a second key id and the previous hash, after the catalog was built.
    (folder / "event_date=2025-06-02").mkdir()
    later = {**row, "pii_key_id_prev": ["k0"], "user_id_prev": ["h0"]}
    pq.write_table(pa.table(later), folder / "event_date=2025-06-02" / "part-00000.parquet")
    columns = _columns(path, "events", "click")
    assert {"event_id", "user_id", "user_id_prev", "event_date"} <= set(columns)
    assert not {"pii_key_id", "pii_key_id_prev"} & set(columns)
    shell = _shell(path, "select pii_key_id_prev from events.click;", tmp_path)
    assert "Binder Error" in shell.stderr


def test_tier_settings_are_checked_with_the_variable_to_set(tmp_path):
    assert tiers.parse_tiers(None) == tiers.TIERS
    assert tiers.parse_tiers(" viewer, Analyst ") == ("analyst", "viewer")
    with pytest.raises(ValueError, match="TELEMETRY_CATALOG_TIERS='admin'"):
        tiers.parse_tiers("admin")
    with pytest.raises(ValueError, match="TELEMETRY_VIEWER_MIN_USERS=1"):
        tiers.check_min_users(1)
    assert tiers.tier_path("/srv/lake.duckdb", "viewer") == "/srv/lake.viewer.duckdb"
    for config, variable in (
        (CatalogResource(path=str(tmp_path / "c.duckdb"), tiers="admin"), "TIERS"),
        (CatalogResource(path=str(tmp_path / "c.duckdb"), viewer_min_users=0), "MIN_USERS"),
    ):
        result = dg.materialize(
            [build_catalog_asset()],
            resources={"lake": LakeResource(root=str(tmp_path / "lake")), "catalog": config},
            raise_on_error=False,
        )
        assert not result.success
        failure = "\n".join(
            str(e.event_specific_data.error) for e in result.all_events if e.is_failure
        )
        assert f"TELEMETRY_{'CATALOG_' if variable == 'TIERS' else 'VIEWER_'}{variable}" in failure
        assert not (tmp_path / "c.duckdb").exists()


def test_the_asset_writes_every_configured_tier(built, tmp_path):
    _, root = built
    path = tmp_path / "lake.duckdb"
    result = dg.materialize(
        [build_catalog_asset()],
        resources={
            "lake": LakeResource(root=str(root)),
            "catalog": CatalogResource(path=str(path), tiers="engineer,viewer", viewer_min_users=3),
        },
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("catalog")
    written = materialization.metadata["tiers"].value
    assert set(written) == {"engineer", "viewer"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake.duckdb", "lake.viewer.duckdb"]
    assert materialization.metadata["viewer_min_users"].value == 3


def test_the_storage_policies_grant_what_each_catalog_reads():
    engineer = tiers.s3_policy("engineer", "telemetry-lake", "lake")
    assert engineer["Statement"][0]["Resource"] == ["arn:aws:s3:::telemetry-lake/lake/*"]
    assert all(s["Effect"] == "Allow" for s in engineer["Statement"])
    analyst = tiers.s3_policy("analyst", "telemetry-lake", "lake")
    granted = analyst["Statement"][0]["Resource"]
    denied = analyst["Statement"][2]["Resource"]
    assert "arn:aws:s3:::telemetry-lake/lake/events/*" in granted
    for prefix in ("landing", "requests", "ops"):
        assert f"arn:aws:s3:::telemetry-lake/lake/{prefix}/*" in denied
    viewer = tiers.s3_policy("viewer", "telemetry-lake", "lake")
    assert viewer["Statement"][0]["Resource"] == ["arn:aws:s3:::telemetry-lake/lake/bundles/*"]
    assert "arn:aws:s3:::telemetry-lake/lake/rollups/*" in viewer["Statement"][2]["Resource"]


def test_the_docs_show_the_policies_as_the_code_makes_them():
    text = (PROJECT_ROOT / "docs" / "access_tiers.md").read_text(encoding="utf-8")
    for tier in tiers.TIERS:
        block = re.search(rf"<!-- policy:{tier} -->\n```json\n(.*?)```", text, flags=re.DOTALL)
        assert block, f"docs/access_tiers.md lacks the {tier} policy block"
        assert json.loads(block.group(1)) == tiers.s3_policy(tier, "telemetry-lake", "lake")


def test_the_shell_is_the_analysts_version():
    """The shell these tests open the catalogs with is the one the README tells analysts to
    install: its own --version against the pin the README and the test extra both carry."""
    [readme_pin] = set(
        re.findall(r"duckdb-cli==([\d.]+)", (PROJECT_ROOT / "README.md").read_text())
    )
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert f"duckdb-cli=={readme_pin}" in project["project"]["optional-dependencies"]["test"]
    shown = subprocess.run([str(SHELL), "--version"], capture_output=True, text=True, check=True)
    # `duckdb --version` prints "v1.5.6 (Variegata) <commit>".
    assert shown.stdout.split()[0] == f"v{readme_pin}", shown.stdout
