"""Schema evolution through the real ingest: lines of every accepted version of a day are checked
against their own version and stored in the current shape; an older major is retired; partitions
written before a version was published stay readable beside newer ones (catalog and rollups);
the downgrade to an older version's columns (function and catalog views)."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.lib.catalog.tiers import ANALYST
from pipelines.lib.catalog.views import write_catalog
from pipelines.lib.contracts.expectations import expectation_specs
from pipelines.lib.contracts.run import run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.lake.paths import events_dir
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup
from pipelines.lib.schemas.downgrade import downgrade, downgrade_columns
from pipelines.lib.schemas.registry import load_event_schemas, load_schema_versions
from pipelines.lib.schemas.sql_compiler import SchemaCompileError
from pipelines.lib.schemas.stored_shape import ADDED_COLUMNS
from tests.conftest import DAY, LakeHelper, event, line, ts
from tests.registries import copy_registry, publish, use_registry, withdraw

V1 = "1.0.0"
V11 = "1.1.0"
# The current version: 1.1.0's fields, every string under the PII policy; it still accepts 1.x.
V2 = "2.0.0"
NEW_RANKING_FIELDS = ("model_version", "candidate_count")


def old_event(
    event_type: str, day=DAY, seconds: float = 3600, version: str = V1, **fields: Any
) -> dict:
    """A valid event of an older version (that version's example, fresh id and time)."""
    [schema] = [s for s in load_schema_versions()[event_type] if s.version == version]
    doc = copy.deepcopy(schema.document["examples"][0])
    doc.update(event_id=str(uuid.uuid4()), timestamp_ms=ts(day, seconds), **fields)
    return doc


def by_version(rows: list[dict], *columns: str) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for row in rows:
        out.setdefault(row["schema_version"], []).append(tuple(row[c] for c in columns))
    return out


def test_both_versions_of_a_day_are_stored_in_the_current_shape(lake: LakeHelper) -> None:
    lake.land(
        DAY,
        "a.jsonl",
        [
            line(old_event("ranking")),
            line(old_event("ranking", seconds=3700, version=V11)),
            line(old_event("error")),
            line(old_event("error", seconds=3800, version=V11)),
        ],
    )
    result = lake.ingest()
    assert result.rows == {"click": 0, "error": 2, "impression": 0, "ranking": 2, "request": 0}
    assert result.quarantined == {}
    rankings = lake.events("ranking")
    assert by_version(rankings, "model_version", "candidate_count") == {
        V1: [(None, None)],
        V11: [("two-tower-v3@2025-06-01", 1800)],
    }
    errors = lake.events("error")
    assert by_version(errors, "stack_fingerprint") == {
        V1: [(None,)],
        V11: [("9f86d081884c7d659a2feaa0c55ad015",)],
    }
    # One table shape for every row of the day: the current version's, lineage columns after.
    names = pq.read_schema(lake.root / events_dir("ranking", DAY) / "part-00000.parquet").names
    assert names[-len(ADDED_COLUMNS) - 2 :][:2] == ["model_version", "candidate_count"]
    assert audit_ledger(lake.lake, DAY).passed


def test_each_line_is_checked_against_its_own_version(lake: LakeHelper) -> None:
    lines = {
        "1.0.0 with a 1.1.0 field": old_event("ranking", model_version="m1"),
        "bad model_version": event("ranking", model_version="two tower!"),
        "negative candidate_count": event("ranking", candidate_count=-1),
        "upper-case fingerprint": event("error", stack_fingerprint="ABCDEF0123456789"),
        "short fingerprint": event("error", stack_fingerprint="abcdef"),
        "unknown version": event("ranking", schema_version="1.2.0"),
        "valid 1.0.0": old_event("ranking"),
        "valid 1.1.0 without the new fields": {
            k: v
            for k, v in old_event("ranking", version=V11).items()
            if k not in ("model_version", "candidate_count")
        },
    }
    lake.land(DAY, "a.jsonl", [line(doc) for doc in lines.values()])
    lake.ingest()
    quarantined = {r["line_no"]: (r["reason"], r["detail"]) for r in lake.quarantine()}
    assert quarantined == {
        1: ("schema_violation", ":additionalProperties"),
        2: ("schema_violation", "/model_version:pattern"),
        3: ("schema_violation", "/candidate_count:minimum"),
        4: ("schema_violation", "/stack_fingerprint:pattern"),
        5: ("schema_violation", "/stack_fingerprint:pattern"),
        6: ("unknown_schema_version", "schema_version is not an accepted version of ranking"),
    }
    assert sorted(r["schema_version"] for r in lake.events("ranking")) == [V1, V11]


def test_a_new_major_retires_the_older_ones(
    lake: LakeHelper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_registry(tmp_path)

    def drop_alpha(doc: dict) -> None:
        del doc["properties"]["alpha"]
        doc["required"].remove("alpha")
        del doc["examples"][0]["alpha"]
        # 3.0.0 accepts no older major: 1.x and 2.x lines are retired.
        del doc["x-accepts-majors"]

    publish(root, "ranking", "3.0.0", drop_alpha)
    use_registry(monkeypatch, root)
    new = {k: v for k, v in event("ranking").items() if k != "alpha"}
    assert new["schema_version"] == "3.0.0"
    older = [
        old_event("ranking"),
        old_event("ranking", seconds=1, version=V11),
        old_event("ranking", seconds=2, version=V2),
    ]
    lake.land(DAY, "a.jsonl", [*map(line, older), line(new)])
    lake.ingest()
    assert [(r["line_no"], r["reason"]) for r in lake.quarantine()] == [
        (1, "unknown_schema_version"),
        (2, "unknown_schema_version"),
        (3, "unknown_schema_version"),
    ]
    [row] = lake.events("ranking")
    assert row["schema_version"] == "3.0.0" and "alpha" not in row


def test_a_version_that_does_not_fit_the_table_is_refused_before_any_read(
    lake: LakeHelper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_registry(tmp_path)
    # A type change under a minor number: the check would refuse it, and so does ingest.
    publish(root, "ranking", "2.1.0", lambda d: d["properties"]["alpha"].update(type="string"))
    use_registry(monkeypatch, root)
    lake.land(DAY, "a.jsonl", [line(old_event("ranking"))])
    with pytest.raises(SchemaCompileError, match=r"ranking 1\.0\.0: field alpha .* new major"):
        lake.ingest()
    assert not (lake.root / "events").exists()


# --- partitions written before 1.1.0 -------------------------------------------------------------

EVE = DAY - timedelta(days=1)


def _chain(day, seconds: float, ranking: dict) -> list[bytes]:
    rid = str(uuid.uuid4())
    return [
        line(event("request", day, seconds, request_id=rid)),
        line({**ranking, "request_id": rid, "timestamp_ms": ts(day, seconds + 0.1)}),
    ]


@pytest.fixture
def two_shapes(lake: LakeHelper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LakeHelper:
    """EVE ingested by the code before 1.1.0 was published (its files lack the new columns), DAY
    after: 1.0.0 and 1.1.0 rankings and errors."""
    lake.land(
        EVE, "a.jsonl", [*_chain(EVE, 100, old_event("ranking")), line(old_event("error", EVE))]
    )
    lake.land(
        DAY,
        "a.jsonl",
        [
            *_chain(DAY, 100, old_event("ranking")),
            *_chain(DAY, 200, old_event("ranking", version=V11)),
            *_chain(
                DAY, 300, old_event("ranking", version=V11, model_version="m2", candidate_count=7)
            ),
            line(old_event("error")),
            line(old_event("error", seconds=400, version=V11)),
        ],
    )
    before = copy_registry(tmp_path)
    for version in (V2, V11):
        withdraw(before, "ranking", version)
        withdraw(before, "error", version)
    with monkeypatch.context() as m:
        use_registry(m, before)
        lake.ingest(EVE)
    lake.ingest(DAY)
    return lake


def _columns(lake: LakeHelper, event_type: str, day) -> list[str]:
    return pq.read_schema(lake.root / events_dir(event_type, day) / "part-00000.parquet").names


def test_old_partitions_lack_the_new_columns(two_shapes: LakeHelper) -> None:
    assert "model_version" not in _columns(two_shapes, "ranking", EVE)
    assert "stack_fingerprint" not in _columns(two_shapes, "error", EVE)
    assert "model_version" in _columns(two_shapes, "ranking", DAY)


def test_the_catalog_reads_old_and_new_partitions_as_one_table(
    two_shapes: LakeHelper, tmp_path: Path
) -> None:
    path = tmp_path / "lake.duckdb"
    result = write_catalog(two_shapes.lake, str(path))
    assert {"events.ranking", "events.ranking_v1_0_0", "events.error_v1_0_0"} <= set(result.written)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select event_date, schema_version, model_version, candidate_count "
            "from events.ranking order by event_date, timestamp_ms"
        ).fetchall()
        assert rows == [
            (EVE, V1, None, None),
            (DAY, V1, None, None),
            (DAY, V11, "two-tower-v3@2025-06-01", 1800),
            (DAY, V11, "m2", 7),
        ]
        errors = con.execute(
            "select event_date, stack_fingerprint from events.error order by event_date, "
            "timestamp_ms"
        ).fetchall()
        assert errors == [(EVE, None), (DAY, "9f86d081884c7d659a2feaa0c55ad015"), (DAY, None)]
        # The view for readers pinned to 1.0.0: every row, the 1.0.0 columns only.
        pinned = [d[0] for d in con.execute("select * from events.ranking_v1_0_0").description]
        assert pinned == [*downgrade_columns("ranking", V1), "event_date"]
        assert "model_version" not in pinned
        (count,) = con.execute("select count(*) from events.ranking_v1_0_0").fetchone()
        assert count == 4


def test_a_pinned_view_hides_in_a_tier_what_its_table_hides(
    two_shapes: LakeHelper, tmp_path: Path
) -> None:
    path = tmp_path / "lake.analyst.duckdb"
    write_catalog(two_shapes.lake, str(path), tier=ANALYST)
    with duckdb.connect(str(path), read_only=True) as con:
        shown = [d[0] for d in con.execute("select * from events.error_v1_0_0").description]
    assert "message" not in shown and "pii_key_id" not in shown
    assert "severity" in shown and "stack_fingerprint" not in shown


def test_rollups_read_old_and_new_partitions_as_one_table(two_shapes: LakeHelper) -> None:
    lake = two_shapes.lake
    for day in (EVE, DAY):
        build_rollup(lake, MODELS_BY_NAME["traffic_daily"], day)
        build_rollup(lake, MODELS_BY_NAME["errors_daily"], day)
    # The day's rollup reads the eve's old-shape partition with its own (requests near midnight).
    rankings = two_shapes.query(
        "select event_date, rankings from read_parquet('{root}/rollups/traffic_daily/*/*.parquet',"
        " hive_partitioning = true) where is_all_traffic order by event_date"
    )
    assert rankings == [(EVE, 1), (DAY, 3)]
    errors = two_shapes.query(
        "select event_date, sum(errors) from read_parquet("
        "'{root}/rollups/errors_daily/*/*.parquet', hive_partitioning = true) "
        "group by event_date order by event_date"
    )
    assert errors == [(EVE, 1), (DAY, 2)]


def test_contracts_hold_old_partitions_and_every_accepted_version_to_the_suite(
    two_shapes: LakeHelper,
) -> None:
    for day in (EVE, DAY):
        result = run_contracts(two_shapes.lake, day, Thresholds(), data_docs=False)
        assert {f: r["failed"] for f, r in result.rates.items()} == dict.fromkeys(
            ("completeness", "consistency", "validity", "timeliness"), 0
        ), day
    [rule] = [
        s
        for s in expectation_specs(load_event_schemas()["ranking"], DAY)
        if s.column == "schema_version" and s.kind == "in_set"
    ]
    assert rule.kwargs == {"value_set": [V1, V11, V2]}


def test_downgrade_projects_the_current_table_to_an_older_version(two_shapes: LakeHelper) -> None:
    con = duckdb.connect()
    urls = [
        *two_shapes.lake.parquet_urls(events_dir("ranking", EVE)),
        *two_shapes.lake.parquet_urls(events_dir("ranking", DAY)),
    ]
    table = read_events(con, urls).to_arrow_table()
    assert table.column("model_version").null_count == 2
    old = downgrade(table, "ranking", V1)
    assert old.column_names == [*downgrade_columns("ranking", V1), "event_date"]
    assert old.num_rows == 4
    assert old.column("latency_ms").to_pylist() == table.column("latency_ms").to_pylist()
    assert downgrade(table, "ranking", V11).column_names[-len(ADDED_COLUMNS) - 3 :][:2] == [
        "model_version",
        "candidate_count",
    ]
    with pytest.raises(ValueError, match=r"cannot be shown as version 0\.9\.0"):
        downgrade(table, "ranking", "0.9.0")
    with pytest.raises(ValueError, match=r"lacks the fields of error 1\.0\.0"):
        downgrade(table, "error", V1)
