"""The contract pages under docs/contracts/ cannot drift from the schemas and the ingest code."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.lib.docs.contract_pages import events as events_page
from pipelines.lib.docs.contract_pages import pii_retention
from pipelines.lib.docs.contract_pages.facts import DocsError
from pipelines.lib.docs.contract_pages.joins_quality import JOINS_PAGE, QUALITY_PAGE
from pipelines.lib.docs.contract_pages.pages import expected_pages
from pipelines.lib.docs.contract_pages.partitioning import PARTITIONING_PAGE
from pipelines.lib.docs.contract_pages.rollups import ROLLUPS_PAGE
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.landing import READS_DAYS_AFTER, READS_DAYS_BEFORE
from pipelines.lib.ingest.reasons import REASONS
from pipelines.lib.lake.paths import PROJECT_ROOT, docs_dir
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.schemas.registry import EventSchema, load_event_schemas

FIX = "run `python -m pipelines.docs` and commit the result"


@pytest.fixture(scope="module")
def expected() -> dict[str, str]:
    return expected_pages(docs_dir())


def _with_field(schema: EventSchema, name: str, spec: dict) -> EventSchema:
    document = copy.deepcopy(schema.document)
    document["properties"][name] = spec
    return replace(schema, document=document)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.docs", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- drift ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        events_page.EVENTS_PAGE,
        PARTITIONING_PAGE,
        pii_retention.PII_PAGE,
        JOINS_PAGE,
        QUALITY_PAGE,
        ROLLUPS_PAGE,
    ],
)
def test_page_matches_what_the_code_renders(expected: dict[str, str], page: str) -> None:
    path = docs_dir() / page
    assert path.is_file(), f"{path} is missing: {FIX}"
    assert path.read_text(encoding="utf-8") == expected[page], f"docs/{page} is stale: {FIX}"


def test_rendering_is_deterministic(expected: dict[str, str]) -> None:
    assert expected_pages(docs_dir()) == expected


def test_check_passes_on_the_repository() -> None:
    result = _run_cli("--check")
    assert result.returncode == 0, f"{result.stderr}\n{FIX}"


def test_check_fails_when_a_schema_gains_a_field(tmp_path: Path) -> None:
    schemas = tmp_path / "events"
    shutil.copytree(PROJECT_ROOT / "schemas" / "events", schemas)
    path = schemas / "click.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    document["properties"]["referrer_id"] = {
        "description": "Who referred the user.",
        "type": "string",
        "maxLength": 64,
        "x-pii-handling": "hash",
        "x-pii": "high",
    }
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")

    result = _run_cli("--check", "--schemas-dir", str(schemas))

    assert result.returncode == 1, result.stderr
    assert events_page.EVENTS_PAGE in result.stderr
    assert pii_retention.PII_PAGE in result.stderr  # the new field is PII: the table is stale too
    assert PARTITIONING_PAGE not in result.stderr
    assert "python -m pipelines.docs" in result.stderr


def test_check_fails_when_a_page_is_edited(tmp_path: Path) -> None:
    shutil.copytree(docs_dir() / "contracts", tmp_path / "contracts")
    page = tmp_path / PARTITIONING_PAGE
    page.write_text(page.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")

    result = _run_cli("--check", "--docs-dir", str(tmp_path))

    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"stale: {page}"
    assert _run_cli("--docs-dir", str(tmp_path)).returncode == 0
    assert _run_cli("--check", "--docs-dir", str(tmp_path)).returncode == 0


# --- events.md -----------------------------------------------------------------------------------


def test_events_page_mentions_every_field_and_reason(expected: dict[str, str]) -> None:
    text = expected[events_page.EVENTS_PAGE]
    for event_type, schema in load_event_schemas().items():
        assert f"## {event_type}\n" in text
        assert schema.document["$id"] in text
        for name in schema.properties:
            assert f"| `{name}` |" in text, f"{event_type}.{name} is not documented"
    for reason in REASONS:
        assert f"`{reason}`: " in text
    for column in events_page.EXTRA_COLUMN_DOCS:
        assert f"| `{column}` |" in text


def test_events_page_lists_reasons_in_precedence_order(expected: dict[str, str]) -> None:
    text = expected[events_page.EVENTS_PAGE]
    rejected = text[text.index("## Rejected events") :]
    positions = [rejected.index(f"`{reason}`: ") for reason in REASONS]
    assert positions == sorted(positions)


def test_events_page_shows_nested_fields_and_stored_types(expected: dict[str, str]) -> None:
    text = expected[events_page.EVENTS_PAGE]
    assert "| `items[].position` | integer, ≥ 1, ≤ 1000 | yes | `BIGINT` |" in text
    assert (
        "| `experiment_id` | string, length 1..128, pattern `^[A-Za-z][A-Za-z0-9_.:/-]*$` "
        "| no (with `bucket`) | `VARCHAR` |"
    ) in text
    assert "| `event_ts` | `TIMESTAMP WITH TIME ZONE` | file |" in text
    assert "| `event_date` | `DATE` | folder name (Hive partition) |" in text


def test_render_events_follows_a_changed_schema() -> None:
    schemas = dict(load_event_schemas())
    before = events_page.render_events(schemas)
    schemas["click"] = _with_field(
        schemas["click"],
        "scroll_depth",
        {"description": "How far the user scrolled, 0..1.", "type": "number", "maximum": 1},
    )
    after = events_page.render_events(schemas)
    assert after != before
    row = "| `scroll_depth` | number, ≤ 1 | no | `DOUBLE` | none | — | How far the user scrolled"
    assert row in after
    assert row not in before


def test_a_new_reason_needs_a_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_page, "REASONS", (*REASONS, "too_exotic"))
    with pytest.raises(DocsError, match="too_exotic"):
        events_page.render_events()


def test_a_new_stored_column_needs_a_description(monkeypatch: pytest.MonkeyPatch) -> None:
    described = {k: v for k, v in events_page.EXTRA_COLUMN_DOCS.items() if k != "landing_line"}
    monkeypatch.setattr(events_page, "EXTRA_COLUMN_DOCS", described)
    with pytest.raises(DocsError, match="landing_line"):
        events_page.render_events()


def test_nested_pii_handling_is_refused_because_ingest_ignores_it() -> None:
    schemas = dict(load_event_schemas())
    ranking = schemas["ranking"]
    document = copy.deepcopy(ranking.document)
    document["properties"]["items"]["items"]["properties"]["canonical_id"]["x-pii-handling"] = (
        "hash"
    )
    schemas["ranking"] = replace(ranking, document=document)
    with pytest.raises(DocsError, match="nested"):
        events_page.render_events(schemas)


# --- partitioning.md -----------------------------------------------------------------------------


def test_partitioning_page_renders_the_window_from_code(expected: dict[str, str]) -> None:
    text = expected[PARTITIONING_PAGE]
    assert f"D-{READS_DAYS_BEFORE} .. D+{READS_DAYS_AFTER}" in text
    assert f"[A-{READS_DAYS_AFTER}, A+{READS_DAYS_BEFORE}]" in text
    assert "events/event_type=<event_type>/event_date=YYYY-MM-DD/part-00000.parquet" in text


def test_window_in_the_docs_is_the_one_the_sql_applies() -> None:
    # The pages render the window from lib/ingest/landing.py; the SQL must take it from there too
    # (bound as $days_late / $days_early), never restate it as a number: where a line's owner is
    # decided (route_lines.sql) and where its late/future reason is (stage_routed.sql).
    for name in ("ingest/route_lines.sql", "ingest/stage_routed.sql"):
        sql = load_sql(name)
        assert "$landing_dt - $days_late" in sql and "$landing_dt + $days_early" in sql, name
        assert f"$landing_dt - {READS_DAYS_AFTER}" not in sql, name
        assert f"$landing_dt + {READS_DAYS_BEFORE}" not in sql, name


# --- pii_retention.md ----------------------------------------------------------------------------


def test_pii_table_lists_every_pii_field_of_every_type() -> None:
    table = pii_retention.render_pii_table()
    for event_type, schema in load_event_schemas().items():
        for name, spec in schema.properties.items():
            row = f"| `{event_type}` | `{name}` |"
            assert (row in table) == (spec["x-pii"] != "none"), row


def test_pii_table_follows_a_new_pii_field() -> None:
    schemas = dict(load_event_schemas())
    schemas["error"] = _with_field(
        schemas["error"],
        "stack",
        {
            "description": "Stack trace.",
            "type": "string",
            "x-pii": "high",
            "x-pii-handling": "scrub",
        },
    )
    assert "| `error` | `stack` | high | scrubbed" in pii_retention.render_pii_table(schemas)


def test_handwritten_pii_page_keeps_the_code_facts(expected: dict[str, str]) -> None:
    text = expected[pii_retention.PII_PAGE]
    for fact in (
        "TELEMETRY_PII_KEY",
        f"at least {pii.MIN_KEY_BYTES} bytes",
        "TELEMETRY_ENV=production",
        "HMAC-SHA256",
        "requests/erasure/",  # erasure
        "schemas do not declare",  # quarantine redaction of unknown keys
        "_RETIRED.json",
        "dry run",
        pii.key_id(pii.DEV_KEY),
        *pii.PLACEHOLDERS,
    ):
        assert fact in text, fact


def test_quarantine_redaction_hashes_every_field_a_schema_hashes() -> None:
    # pii_retention.md says a quarantined line is hashed like the stored event; redaction works
    # from pii.HASHED_KEYS, not from the schemas.
    for event_type, schema in load_event_schemas().items():
        for name, spec in schema.properties.items():
            if spec.get("x-pii-handling") == "hash":
                assert name in pii.HASHED_KEYS, f"{event_type}.{name} is not in pii.HASHED_KEYS"


def test_splice_replaces_only_the_region() -> None:
    text = "intro\n<!-- generated:t -->\nold\n<!-- /generated:t -->\noutro\n"
    assert pii_retention.splice(text, {"t": "new"}) == (
        "intro\n<!-- generated:t -->\nnew\n<!-- /generated:t -->\noutro\n"
    )
    with pytest.raises(DocsError, match="generated:other"):
        pii_retention.splice(text, {"other": "x"})
