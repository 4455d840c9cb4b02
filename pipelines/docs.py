"""Regenerate the contract pages under docs/contracts/ from the schemas and the ingest code.

    python -m pipelines.docs            # write the pages that changed
    python -m pipelines.docs --check    # exit 1, listing the stale pages, if any page is stale

events.md and partitioning.md are generated whole; pii_retention.md is hand-written except for
its <!-- generated:NAME --> regions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.lib.docs.contract_pages.facts import DocsError
from pipelines.lib.docs.contract_pages.pages import expected_pages, stale_pages, write_pages
from pipelines.lib.docs.markdown import REGENERATE
from pipelines.lib.lake.paths import docs_dir
from pipelines.lib.schemas.registry import load_event_schemas


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing the pages that differ from what the code renders",
    )
    parser.add_argument(
        "--docs-dir",
        type=Path,
        default=None,
        help="the docs folder holding contracts/ (default: the checkout's docs/)",
    )
    parser.add_argument(
        "--schemas-dir",
        type=Path,
        default=None,
        help="folder of event schemas to render (default: the checkout's schemas/events/)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    docs_root = args.docs_dir or docs_dir()
    try:
        schemas = load_event_schemas(args.schemas_dir.resolve() if args.schemas_dir else None)
        expected = expected_pages(docs_root, schemas)
    except DocsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_pages(docs_root, expected)
        for page in stale:
            print(f"stale: {docs_root / page}", file=sys.stderr)
        if stale:
            print(f"run `{REGENERATE}` to regenerate them", file=sys.stderr)
            return 1
        print(f"{len(expected)} pages up to date")
        return 0
    written = write_pages(docs_root, expected)
    for page in written:
        print(f"wrote {docs_root / page}")
    if not written:
        print(f"{len(expected)} pages already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
