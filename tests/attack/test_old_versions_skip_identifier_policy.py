"""Lines of an older schema version (1.x, still accepted) bypass the identifier policy (issue 19
attack finding). In the current version ``surface``, ``region``, ``bucket``, ``experiment_id``,
``component`` and ``canonical_id`` are identifiers with a pattern (and bare digits refused where
the schema says so): free text cannot get in. The 1.x schemas have no pattern on them, and a 1.x
line is stored with whatever text it carries, so anything the detector does not recognise (a
name and street address, a bare US phone) is kept as sent. Each value
below fails the current version's pattern; in a 1.x line it must not be stored either."""

from __future__ import annotations

import copy
import json
import uuid

import duckdb
import pytest

from tests.conftest import DAY, LakeHelper, line, ts

CASES = [
    ("request", "1.0.0", "region", "Alice Smith, 12 Rue de Rivoli"),
    ("impression", "1.0.0", "surface", "2025550143"),
    ("ranking", "1.1.0", "bucket", "Jane Doe"),
    ("error", "1.1.0", "component", "user Jane Doe, 12 Rue de Rivoli, Paris"),
]


def _v1(event_type: str, version: str, **fields: str) -> dict:
    path = f"schemas/events/{event_type}/{version}.json"
    from pipelines.lib.lake.paths import PROJECT_ROOT

    doc = copy.deepcopy(json.loads((PROJECT_ROOT / path).read_text())["examples"][0])
    doc["event_id"] = str(uuid.uuid4())
    doc["timestamp_ms"] = ts(DAY)
    doc.update(fields)
    return doc


@pytest.mark.parametrize(("event_type", "version", "field", "value"), CASES)
def test_old_version_line_cannot_store_free_text_in_an_identifier(
    lake: LakeHelper, event_type: str, version: str, field: str, value: str
) -> None:
    lake.land(DAY, "a.jsonl", [line(_v1(event_type, version, **{field: value}))])
    lake.ingest()
    con = duckdb.connect()
    path = lake.root / f"events/event_type={event_type}/event_date={DAY}/part-00000.parquet"
    stored = [r[0] for r in con.execute(f"select {field} from read_parquet('{path}')").fetchall()]
    assert value not in stored, f"{version} {event_type}.{field} stored {value!r} as sent"
