"""The schema-derived GX suites: completeness and validity over the stored day, with exact
offending keys. Ingest never writes such rows, so the tests tamper with a published file, as a
writer bug or a tool writing into the lake would."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.lib.contracts import gx_suites
from pipelines.lib.contracts.expectations import KINDS
from pipelines.lib.contracts.rules import COMPLETENESS, CONSISTENCY_RULES, VALIDITY
from pipelines.lib.contracts.run import run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.lake.paths import contracts_file, events_file, quality_file
from pipelines.lib.lake.sql import load_sql
from tests.conftest import DAY, event, line, ts


def _tamper(lake, event_type: str, changes: dict[int, dict]) -> list[dict]:
    path = lake.root / events_file(event_type, DAY)
    schema = pq.read_schema(path)
    rows = pq.read_table(path).to_pylist()
    for index, fields in changes.items():
        rows[index].update(fields)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return rows


def _violations(lake, family: str) -> list[tuple]:
    rows = pq.read_table(lake.root / contracts_file(DAY)).to_pylist()
    return sorted(
        (r["rule"], r["event_id"], r["request_id"], r["detail"])
        for r in rows
        if r["family"] == family
    )


def _quality(lake) -> dict[str, dict]:
    return {r["rule"]: r for r in pq.read_table(lake.root / quality_file(DAY)).to_pylist()}


@pytest.fixture
def tampered(lake):
    docs = [event("request", seconds=3600 + i) for i in range(6)]
    docs[5].pop("session_id")  # optional: reported, never a violation
    lake.land(DAY, "a.jsonl", [line(d) for d in docs])
    lake.ingest()
    rows = _tamper(
        lake,
        "request",
        {
            0: {"user_id": "u-000123"},  # a raw identifier where a keyed hash belongs
            1: {"k": 0},
            2: {"device_type": None},
            3: {"timestamp_ms": ts(DAY, 86400 + 5)},  # the next day's time in D's file
            4: {"device_type": "toaster"},
        },
    )
    result = run_contracts(lake.lake, DAY, Thresholds(), data_docs=False)
    return lake, rows, result


def test_validity_names_each_offending_event_and_value(tampered):
    lake, rows, result = tampered
    key = [(r["event_id"], r["request_id"]) for r in rows]
    assert _violations(lake, VALIDITY) == sorted(
        [
            ("request.user_id:pattern", *key[0], "user_id = u-000123"),
            ("request.k:between", *key[1], "k = 0"),
            ("request.timestamp_ms:between", *key[3], f"timestamp_ms = {ts(DAY, 86405)}"),
            ("request.device_type:in_set", *key[4], "device_type = toaster"),
        ]
    )
    assert result.rates[VALIDITY]["failed"] == 4
    assert result.rates[VALIDITY]["checked"] == 6
    assert result.rates[VALIDITY]["rate"] == pytest.approx(2 / 6)


def test_completeness_gates_required_fields_and_reports_optional_ones(tampered):
    lake, rows, result = tampered
    assert _violations(lake, COMPLETENESS) == [
        (
            "request.device_type:not_null",
            rows[2]["event_id"],
            rows[2]["request_id"],
            "device_type = null",
        )
    ]
    assert result.rates[COMPLETENESS]["failed"] == 1
    quality = _quality(lake)
    presence = quality["request.session_id:present"]
    assert (presence["scope"], presence["checked"], presence["failed"]) == ("reported", 6, 1)
    assert quality["request.device_type:not_null"]["failed"] == 1
    assert quality["request.k:between"]["failed"] == 1


def test_a_clean_day_has_no_single_table_violation(lake):
    lake.land(DAY, "a.jsonl", [line(event(t)) for t in ("request", "ranking", "click", "error")])
    lake.ingest()
    result = run_contracts(lake.lake, DAY, Thresholds(), data_docs=False)
    assert result.rates[COMPLETENESS]["failed"] == result.rates[VALIDITY]["failed"] == 0
    assert result.rates[VALIDITY]["checked"] == 4


def test_every_expectation_kind_has_a_gx_class():
    assert set(gx_suites.EXPECTATION_CLASSES) == set(KINDS)


def test_the_consistency_sql_emits_every_declared_rule():
    sql = load_sql("contracts/consistency.sql")
    for rule in CONSISTENCY_RULES:
        assert f"'{rule.name}' as rule" in sql, rule.name
