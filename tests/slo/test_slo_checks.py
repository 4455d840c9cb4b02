"""The SLO and anomaly checks through real Dagster runs: two generated days go through ingest,
contracts (with their gates) and the daily rollups into a tmp_path lake, with the checks in the
same runs. A normal day passes; a day whose search rankings were slowed down in the landing
files fails the p95 latency check with the p95 computed here from the events; 28 days of
rollup history written beside the normal day make it a spike the anomaly check flags."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.defs.contracts.assets import build_contracts_asset
from pipelines.defs.contracts.checks import build_family_check
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import (
    ContractsResource,
    DuckDBSettings,
    LakeResource,
    PiiResource,
    RollupsResource,
    SloResource,
)
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.defs.slo.checks import (
    ANOMALY_CHECKS,
    SLO_CHECKS,
    SLO_LATENCY_P95,
    build_slo_checks,
)
from pipelines.lib.contracts.rules import FAMILIES
from pipelines.lib.lake.paths import ledger_dir, ledger_file, slo_file
from pipelines.lib.lake.storage import Lake, write_table
from pipelines.lib.rollups.run import DAY, MODELS, MODELS_BY_NAME, rollup_dir, rollup_file
from pipelines.lib.sample.config import DAY_MS, SampleConfig
from pipelines.lib.sample.generator import generate
from pipelines.lib.slo.config import load_slo_config

NORMAL = date(2025, 6, 2)
SLOW = date(2025, 6, 3)  # search rankings 6x slower
SLOWDOWN = 6.0


def _slow_down_search(root: Path, day: date) -> None:
    """Multiply the latency of ``day``'s rankings of search requests in every landing file."""
    files = sorted((root / "landing").glob("dt=*/*.jsonl*"))

    def lines(path: Path) -> list[bytes]:
        data = path.read_bytes()
        return (gzip.decompress(data) if path.suffix == ".gz" else data).splitlines()

    def parsed(line: bytes) -> dict | None:
        try:
            doc = json.loads(line)
        except ValueError:
            return None  # a planted malformed line
        return doc if isinstance(doc, dict) else None

    surfaces = {
        doc.get("request_id"): doc.get("surface")
        for path in files
        for doc in map(parsed, lines(path))
        if doc and doc.get("event_type") == "request"
    }
    for path in files:
        out = []
        for line in lines(path):
            doc = parsed(line)
            if (
                doc
                and doc.get("event_type") == "ranking"
                and isinstance(doc.get("latency_ms"), int | float)
                and isinstance(doc.get("timestamp_ms"), int)
                and doc["timestamp_ms"] // DAY_MS == (day - date(1970, 1, 1)).days
                and surfaces.get(doc.get("request_id")) == "search"
            ):
                doc["latency_ms"] = round(doc["latency_ms"] * SLOWDOWN, 1)
                line = json.dumps(doc, separators=(",", ":")).encode()
            out.append(line)
        data = b"\n".join(out) + b"\n"
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _resources(root: str, slo: SloResource | None = None) -> dict:
    return {
        "lake": LakeResource(root=root),
        "pii": PiiResource(),
        "duckdb": DuckDBSettings(memory_limit="1GB"),
        "contracts": ContractsResource(),
        "rollups": RollupsResource(),
        "slo": slo or SloResource(),
    }


def _daily_run(root: str, day: date, with_contracts: bool) -> dg.ExecuteInProcessResult:
    """What the daily_lake job runs for ``day``: ingest, contracts and their gates (unless left
    out), the daily rollups, and the SLO checks."""
    partitions = daily_partitions()
    contracts = [
        build_contracts_asset(partitions),
        *[build_family_check(f, partitions) for f in FAMILIES],
    ]
    return dg.materialize(
        [
            build_ingest_assets(partitions),
            *(contracts if with_contracts else []),
            *[build_rollup_asset(m, partitions) for m in MODELS if m.grain == DAY],
            build_slo_checks(partitions),
        ],
        resources=_resources(root),
        partition_key=day.isoformat(),
    )


def _checks_run(root: str, day: date, slo: SloResource | None = None) -> dg.ExecuteInProcessResult:
    """traffic_daily rebuilt and its checks, on a lake whose day is already ingested."""
    partitions = daily_partitions()
    return dg.materialize(
        [
            build_rollup_asset(MODELS_BY_NAME["traffic_daily"], partitions),
            build_slo_checks(partitions),
        ],
        resources=_resources(root, slo),
        partition_key=day.isoformat(),
        raise_on_error=False,
    )


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _value(evaluation: dg.AssetCheckEvaluation, key: str):
    return evaluation.metadata[key].value


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("slo_checks") / "lake"
    generate(SampleConfig(start=NORMAL, days=2, requests_per_day=150), str(root))
    _slow_down_search(root, SLOW)
    # The whole daily path once; the slow day needs only its rollups (contracts take seconds).
    runs = {
        NORMAL: _evaluations(_daily_run(str(root), NORMAL, with_contracts=True)),
        SLOW: _evaluations(_daily_run(str(root), SLOW, with_contracts=False)),
    }
    return root, runs


def test_a_normal_day_passes_every_slo_check_with_its_figures(lake) -> None:
    _, runs = lake
    checks = runs[NORMAL]
    assert set(checks) == {*SLO_CHECKS.values(), *ANOMALY_CHECKS.values(), *FAMILIES}
    assert all(checks[f].passed for f in FAMILIES)
    for name in SLO_CHECKS.values():
        check = checks[name]
        assert check.passed, (name, check.metadata)
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert _value(check, "measured") is not None
        assert {"target", "direction", "budget_used_this_month", "slice"} <= set(check.metadata)
    error_rate = checks[SLO_CHECKS["error_rate"]]
    assert _value(error_rate, "direction") == "max" and _value(error_rate, "slice") is None
    latency = checks[SLO_LATENCY_P95]
    assert _value(latency, "slices_failing") == 0
    assert set(_value(latency, "by_slice")) >= {"surface=home", "surface=search"}
    # No history yet: every anomaly check passes and says it did not judge the day.
    for name in ANOMALY_CHECKS.values():
        assert checks[name].passed
        assert _value(checks[name], "judged") is False
        assert _value(checks[name], "history_days") == 0


def _search_p95(root: Path, day: date) -> float:
    """The p95 of ``day``'s search rankings, from the events (the ranking's request: the first
    request with its id, on the day or the one before)."""

    def read(event_type: str, d: date) -> pa.Table | None:
        path = root / f"events/event_type={event_type}/event_date={d}/part-00000.parquet"
        return pq.read_table(path) if path.exists() else None

    days = (day - timedelta(days=1), day)
    requests = [t for t in (read("request", d) for d in days) if t is not None]
    rows = sorted(
        (
            r
            for t in requests
            for r in t.select(["request_id", "surface", "timestamp_ms", "event_id"]).to_pylist()
        ),
        key=lambda r: (r["timestamp_ms"], r["event_id"]),
    )
    surface = {}
    for r in rows:
        surface.setdefault(r["request_id"], r["surface"])
    rankings = read("ranking", day).select(["request_id", "latency_ms"]).to_pylist()
    latencies = [r["latency_ms"] for r in rankings if surface.get(r["request_id"]) == "search"]
    assert len(latencies) > 20
    return float(np.percentile(latencies, 95))


def test_slow_search_rankings_fail_the_p95_check_with_their_p95(lake) -> None:
    root, runs = lake
    check = runs[SLOW][SLO_LATENCY_P95]
    target = load_slo_config().latency_p95_ms.for_surface("search")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert _value(check, "sample_failing_slices") == ["surface=search"]
    assert _value(check, "slice") == "surface=search"
    assert _value(check, "measured") == pytest.approx(_search_p95(root, SLOW))
    assert _value(check, "target") == target < _value(check, "measured")
    # One day of the month missed, of the allowed days.
    allowed = load_slo_config().allowed_bad_days_per_month
    assert _value(check, "budget_used_this_month") == pytest.approx(1 / allowed)
    # Against the pace: by 3 June a 30-day month may have used 3 / 30 of its allowed days.
    assert _value(check, "budget_burn_vs_pace") == pytest.approx(1 / (allowed * 3 / 30))
    search = _value(check, "by_slice")["surface=search"]
    assert search["ok"] is False and search["measured"] == _value(check, "measured")
    assert all(v["ok"] for k, v in _value(check, "by_slice").items() if k != "surface=search")
    # Not blocking, and the other SLOs of the day are unaffected.
    assert runs[SLOW][SLO_CHECKS["error_rate"]].passed


def _scaled(table: pa.Table, factor: float) -> pa.Table:
    """The table with its count columns multiplied by ``factor`` (rounded)."""
    for i, name in enumerate(table.column_names):
        if pa.types.is_integer(table.schema.field(name).type):
            scaled = pc.cast(pc.round(pc.multiply(table[name], factor)), pa.int64())
            table = table.set_column(i, name, scaled)
    return table


def test_a_day_far_above_its_history_is_flagged_with_the_slice_that_moved(
    lake, tmp_path: Path
) -> None:
    source, _ = lake
    root = tmp_path / "lake"
    shutil.copytree(source, root)
    the_lake = Lake(str(root))
    # 28 days before the normal day at 40% of its traffic (2% day-to-day noise): the normal day
    # is then a spike of 2.5x, every slice up in proportion, home (half the requests) the most.
    # Rates, latencies (traffic_parts) and the ledger are the day's own: flat, and met exactly.
    rng = random.Random(3)
    traffic = the_lake.read_partition(rollup_dir("traffic_daily", DAY, NORMAL))
    parts = the_lake.read_partition(rollup_dir("traffic_parts", DAY, NORMAL))
    ledger = the_lake.read_partition(ledger_dir(NORMAL))
    for n in range(1, 29):
        day = NORMAL - timedelta(days=n)
        scaled = _scaled(traffic, 0.4 * rng.gauss(1.0, 0.02))
        write_table(the_lake, rollup_file("traffic_daily", DAY, day), scaled)
        write_table(the_lake, rollup_file("traffic_parts", DAY, day), parts)
        write_table(the_lake, ledger_file(day), ledger)

    checks = _evaluations(_checks_run(str(root), NORMAL))
    requests = checks[ANOMALY_CHECKS["requests"]]
    assert not requests.passed and requests.severity == dg.AssetCheckSeverity.WARN
    assert _value(requests, "direction") == "high"
    assert _value(requests, "z_score") > 3
    assert _value(requests, "value") > _value(requests, "upper")
    assert _value(requests, "expected") == pytest.approx(0.4 * 150, rel=0.05)
    assert _value(requests, "slice_moved_most") == "surface=home"
    assert _value(requests, "history_days") == 28
    # Rates, latency and the ledger's shares did not move.
    for metric in ("ctr", "error_rate", "latency_p95_ms", "quarantine_share", "late_share"):
        assert checks[ANOMALY_CHECKS[metric]].passed, metric
        assert _value(checks[ANOMALY_CHECKS[metric]], "judged") is True


def test_a_bad_slo_file_fails_the_check_step_naming_the_key(lake, tmp_path: Path) -> None:
    root, _ = lake
    bad = tmp_path / "slo.yaml"
    text = slo_file().read_text(encoding="utf-8")
    bad.write_text(text.replace("error_rate_max: 0.02", "error_rate_max: 2"), encoding="utf-8")
    result = _checks_run(str(root), NORMAL, SloResource(path=str(bad)))
    assert not result.success
    failure = "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)
    assert "error_rate_max must be a share between 0 and 1" in failure


def test_the_daily_jobs_run_every_slo_check_and_none_blocks(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", str(tmp_path / "lake"))
    from pipelines.definitions import defs

    ours = {
        dg.AssetCheckKey(dg.AssetKey("traffic_daily"), name)
        for name in [*SLO_CHECKS.values(), *ANOMALY_CHECKS.values()]
    }
    repo = defs.get_repository_def()
    for job in ("daily_lake", "rollups_daily"):
        assert ours <= repo.get_job(job).asset_layer.asset_graph.asset_check_keys, job
    assert not ours & repo.get_job("rollups_weekly").asset_layer.asset_graph.asset_check_keys
    graph = defs.resolve_asset_graph()
    assert not any(graph.get_check_spec(key).blocking for key in ours)
    assert isinstance(defs.resources["slo"], SloResource)
