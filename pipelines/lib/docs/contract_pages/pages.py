"""Every page under ``docs/contracts/`` rendered from the code, and whether the checkout's copies
are stale (``python -m pipelines.docs [--check]``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipelines.lib.docs.contract_pages.events import EVENTS_PAGE, render_events
from pipelines.lib.docs.contract_pages.facts import DocsError
from pipelines.lib.docs.contract_pages.joins_quality import (
    JOINS_PAGE,
    QUALITY_PAGE,
    render_joins,
    render_quality,
)
from pipelines.lib.docs.contract_pages.partitioning import PARTITIONING_PAGE, render_partitioning
from pipelines.lib.docs.contract_pages.pii_retention import PII_PAGE, render_pii_page
from pipelines.lib.docs.contract_pages.rollups import (
    ROLLUPS_PAGE,
    output_schemas,
    render_rollup_columns,
    render_rollups,
)
from pipelines.lib.rollups.columns import ROLLUP_COLUMNS_PAGE
from pipelines.lib.schemas.registry import EventSchema, load_event_schemas


def expected_pages(
    docs_root: Path, schemas: Mapping[str, EventSchema] | None = None
) -> dict[str, str]:
    """Page (relative to ``docs/``) -> the text it must have."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    pii_path = docs_root / PII_PAGE
    if not pii_path.is_file():
        raise DocsError(f"{pii_path} is missing: it is written by hand, restore it from git")
    rollup_schemas = output_schemas()  # one run of every model for the page and its JSON twin
    return {
        EVENTS_PAGE: render_events(schemas),
        JOINS_PAGE: render_joins(),
        QUALITY_PAGE: render_quality(schemas),
        ROLLUPS_PAGE: render_rollups(rollup_schemas),
        ROLLUP_COLUMNS_PAGE: render_rollup_columns(rollup_schemas),
        PARTITIONING_PAGE: render_partitioning(schemas),
        PII_PAGE: render_pii_page(pii_path.read_text(encoding="utf-8"), schemas),
    }


def stale_pages(docs_root: Path, expected: Mapping[str, str]) -> list[str]:
    stale = []
    for page, text in expected.items():
        path = docs_root / page
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(page)
    return stale


def write_pages(docs_root: Path, expected: Mapping[str, str]) -> list[str]:
    """Write the pages that changed; returns them."""
    changed = stale_pages(docs_root, expected)
    for page in changed:
        path = docs_root / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[page], encoding="utf-8")
    return changed
