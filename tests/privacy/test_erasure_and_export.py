"""Erasure and export end to end on a generated month, through the real sensor and jobs. An export
holds every row of its user (against a direct query). An erasure leaves the users' rows nowhere
(their exports included), the rollups equal a recomputation without them, the ledger still
balances, the audit entry is complete and holds no raw id, and a repeat changes nothing."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.defs.privacy.erasure import erase_users, erasure_requests_sensor
from pipelines.defs.privacy.export import export_user_job
from pipelines.defs.resources import LakeResource
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.erased_users import erased_users
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.privacy.audit import AUDIT_DIR
from pipelines.lib.privacy.exports import EXPORTS_DIR
from pipelines.lib.privacy.requests import (
    PROCESSED_DIR,
    REQUESTS_DIR,
    ErasureRequestError,
    parse_request,
)
from pipelines.lib.rollups.run import MODELS, build_rollup
from tests.conftest import privacy_resources
from tests.privacy.conftest import DAYS, raw_user_counts

REQUEST_ID = "r-2026-001"


def _count(root: Path, glob: str, where: str, hashes: list[str]) -> int:
    con = duckdb.connect()
    return con.execute(
        f"select count(*) from read_parquet('{root}/{glob}', union_by_name = true) where {where}",
        [hashes],
    ).fetchone()[0]


def _users_rows(root: Path, hashes: list[str]) -> dict[str, int]:
    return {
        "events": _count(root, "events/*/*/*.parquet", "list_has_any([user_id], ?)", hashes),
        "quarantine": _count(
            root,
            "quarantine/*/*.parquet",
            "list_has_any(regexp_extract_all(text, '[0-9a-f]{64}'), ?)",
            hashes,
        ),
    }


def _run_sensor_and_job(root: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"lake": LakeResource(root=root)}
        )
        [request] = erasure_requests_sensor(context).run_requests
        return erase_users.execute_in_process(
            run_config=request.run_config, resources=privacy_resources(root), instance=instance
        )


def _export(root: str, user_id: str) -> Path:
    (Path(root) / "requests" / "export").mkdir(parents=True, exist_ok=True)
    request = Path(root) / "requests" / "export" / "ticket-42.json"
    request.write_text(json.dumps({"user_id": user_id}))
    result = export_user_job.execute_in_process(
        run_config={
            "ops": {"export": {"config": {"request_file": "requests/export/ticket-42.json"}}}
        },
        resources=privacy_resources(root),
    )
    assert result.success
    assert not request.exists()  # the raw id is not kept
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return Path(output.event_specific_data.metadata["export_folder"].value)


def test_an_export_holds_every_row_of_its_user(month):
    root = Path(month.root)
    user = raw_user_counts(root).most_common(3)[2][0]  # not one of the erased users
    hashed = pii.hmac_hex(pii.DEV_KEY, user)
    folder = _export(str(root), user)
    manifest = json.loads((folder / "manifest.json").read_text())
    lines = [json.loads(x) for x in (folder / "rows.jsonl").read_text().splitlines()]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    expected = dict(
        con.execute(
            f"select event_type, count(*) from read_parquet('{root}/events/*/*/*.parquet', "
            "union_by_name = true) where user_id = ? group by event_type",
            [hashed],
        ).fetchall()
    )
    assert {t: n for t, n in manifest["rows_by_type"].items() if t != "quarantine" and n} == (
        expected
    )
    assert len(lines) == manifest["rows"] == sum(manifest["rows_by_type"].values())
    assert all(line.get("user_id") == hashed for line in lines if line["table"] == "events")
    first, last = con.execute(
        f"select min(event_ts), max(event_ts) from read_parquet('{root}/events/*/*/*.parquet', "
        "union_by_name = true) where user_id = ?",
        [hashed],
    ).fetchone()
    assert manifest["first_event_ts"].startswith(first.strftime("%Y-%m-%dT%H:%M:%S"))
    assert manifest["last_event_ts"].startswith(last.strftime("%Y-%m-%dT%H:%M:%S"))
    assert manifest["hashed_ids"] == [hashed]
    assert user.encode() not in (folder / "rows.jsonl").read_bytes()


def _all_rollups(lake) -> dict[tuple[str, str], list]:
    tables = {}
    for model in MODELS:
        for folder in lake.list_dirs(f"rollups/{model.name}"):
            rel = f"rollups/{model.name}/{folder}"
            rows = [
                # Parallel float sums may differ in the last bits between two builds.
                {k: round(v, 9) if isinstance(v, float) else v for k, v in row.items()}
                for row in lake.read_partition(rel).to_pylist()
            ]
            tables[(model.name, folder)] = sorted(rows, key=lambda r: json.dumps(r, default=str))
    return tables


@pytest.fixture(scope="module")
def erased(month):
    root = Path(month.root)
    victims = [user for user, _ in raw_user_counts(root).most_common(2)]
    hashes = sorted(pii.hmac_hex(pii.DEV_KEY, v) for v in victims)
    before = _users_rows(root, hashes)
    _export(str(root), victims[0])  # an erasure deletes the user's exports too
    (root / REQUESTS_DIR).mkdir(parents=True)
    request = root / REQUESTS_DIR / f"{REQUEST_ID}.json"
    request.write_text(json.dumps({"request_id": REQUEST_ID, "user_ids": victims}))
    result = _run_sensor_and_job(str(root))
    return month, victims, hashes, before, result


def test_the_users_rows_are_gone_everywhere(erased):
    lake, _, hashes, before, result = erased
    assert result.success
    assert before["events"] > 20 and before["quarantine"] > 0
    assert _users_rows(Path(lake.root), hashes) == {"events": 0, "quarantine": 0}
    exports = [
        json.loads(p.read_text())["hashed_ids"]
        for p in (Path(lake.root) / EXPORTS_DIR).glob("*/manifest.json")
    ]
    assert not any(set(h) & set(hashes) for h in exports)
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert set(metadata["proof_rows_left"].values()) == {0}
    removed = sum(v for k, v in metadata.items() if k.startswith("rows_removed_events_"))
    assert removed == before["events"]
    assert metadata["rows_removed_quarantine"] == before["quarantine"]
    assert metadata["rollups_rebuilt"] > 0


def test_rollups_equal_a_recomputation_without_the_users(erased):
    lake, *_ = erased
    after_erasure = _all_rollups(lake)
    for model in MODELS:
        for folder in lake.list_dirs(f"rollups/{model.name}"):
            build_rollup(lake, model, date.fromisoformat(folder.split("=", 1)[1]))
    assert _all_rollups(lake) == after_erasure


def test_every_ledger_still_balances(erased):
    lake, *_ = erased
    for day in DAYS:
        audit = audit_ledger(lake, day)
        assert audit.passed, (day, audit.metadata())
    erased_total = sum(
        sum(pq.read_table(lake.path(f.path)).column("erased").to_pylist())
        for day in DAYS
        for f in lake.parquet_files(f"ledger/event_date={day}")
        if "erased" in pq.read_schema(lake.path(f.path)).names
    )
    _, _, _, before, _ = erased
    assert erased_total == before["events"] + before["quarantine"]


def test_the_audit_entry_is_complete_and_holds_no_raw_id(erased):
    lake, victims, hashes, before, _ = erased
    root = Path(lake.root)
    [audit_file] = (root / AUDIT_DIR / f"request_id={REQUEST_ID}").glob("*.parquet")
    audit = pq.read_table(audit_file).to_pylist()
    assert {r["request_id"] for r in audit} == {REQUEST_ID}
    # The hashes once per request (its first row), not once per action.
    assert audit[0]["action"] == "request" and audit[0]["hashed_ids"] == hashes
    assert all(r["hashed_ids"] is None for r in audit[1:])
    assert all(r["received_at"] <= r["completed_at"] for r in audit)
    removed = {}
    for r in audit:
        if r["action"] == "rewritten" and r["table_name"].startswith(("events/", "quarantine")):
            key = "events" if r["table_name"].startswith("events/") else "quarantine"
            removed[key] = removed.get(key, 0) + r["rows_removed"]
    assert removed == before
    assert any(r["action"] == "rollup_rebuilt" for r in audit)
    # The raw ids are nowhere in the lake outside landing/ (not in the audit, not in processed/).
    for path in root.rglob("*"):
        if path.is_file() and "landing" not in path.parts:
            data = path.read_bytes()
            assert not any(v.encode() in data for v in victims), path
    processed = json.loads((root / PROCESSED_DIR / f"{REQUEST_ID}.json").read_text())
    assert processed["hashed_ids"] == hashes and processed["raw_ids_removed"] is True
    assert not (root / REQUESTS_DIR / f"{REQUEST_ID}.json").exists()
    registry = erased_users(lake).to_pydict()
    assert sorted(registry["hashed_id"]) == hashes


def test_a_rebuild_from_landing_does_not_bring_them_back(erased):
    lake, _, hashes, _, _ = erased
    day = DAYS[14]
    result = ingest_partition(lake, day, PiiKey(pii.DEV_KEY), IngestSettings(memory_limit="512MB"))
    assert result.erased > 0
    root = Path(lake.root)
    glob = f"events/*/event_date={day}/*.parquet"
    assert _count(root, glob, "list_has_any([user_id], ?)", hashes) == 0
    assert audit_ledger(lake, day).passed


def test_a_second_run_of_the_same_request_is_a_no_op(erased):
    lake, victims, *_ = erased
    root = Path(lake.root)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet") if "ops" not in p.parts}
    again = root / REQUESTS_DIR / f"{REQUEST_ID}-again.json"
    again.write_text(json.dumps({"request_id": REQUEST_ID, "user_ids": victims}))
    result = erase_users.execute_in_process(
        run_config={"ops": {"erase": {"config": {"request_file": f"{REQUESTS_DIR}/{again.name}"}}}},
        resources=privacy_resources(lake.root),
    )
    assert result.success
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    audits = sorted((root / AUDIT_DIR / f"request_id={REQUEST_ID}").glob("*.parquet"))
    assert len(audits) == 2
    latest = pq.read_table(audits[-1]).to_pylist()
    assert [r["action"] for r in latest if r["action"] != "landing_retained"] == [
        "request",
        "nothing_found",
    ]


def test_raw_ids_are_never_taken_as_run_config(erased):
    """Dagster keeps run config in its run storage: user ids there would outlive the erasure."""
    lake, victims, *_ = erased
    with pytest.raises(dg.DagsterInvalidConfigError, match="user_ids"):
        erase_users.execute_in_process(
            run_config={"ops": {"erase": {"config": {"request_id": "r-9", "user_ids": victims}}}},
            resources=privacy_resources(lake.root),
        )


@pytest.mark.parametrize(
    ("request_id", "why"),
    [
        ("07700900123", "phone"),
        ("alice.leak@example.com", "request_id must be"),
        ("ticket-user-000123", "contains one of the user ids"),
    ],
)
def test_a_request_id_holding_pii_is_refused(request_id, why):
    with pytest.raises(ErasureRequestError, match=why):
        parse_request({"request_id": request_id, "user_ids": ["user-000123"]}, datetime.now(UTC))
