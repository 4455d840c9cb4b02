"""The event schema registry from the command line.

    python -m pipelines.schemas check                    # the repository's schemas/events/
    python -m pipelines.schemas check --schemas-dir DIR  # another registry

``check`` classifies each published version against the one before it (revision, addition or
breaking; see pipelines/lib/schemas/changes.py), checks every file, and exits 1 naming each
problem, e.g. a breaking change published without a major version bump.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.lib.schemas.changes import REQUIRED_BUMP, RegistryReport, check_registry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.schemas", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="classify every version change and fail on one whose version bump is too small",
    )
    check.add_argument(
        "--schemas-dir",
        type=Path,
        default=None,
        help="the registry folder (default: the checkout's schemas/events/)",
    )
    return parser


def render(report: RegistryReport) -> str:
    lines = [f"registry: {report.root}"]
    for c in report.comparisons:
        lines.append(
            f"{c.event_type} {c.old} -> {c.new}: {c.kind} (needs a {REQUIRED_BUMP[c.kind]} "
            f"bump, has a {c.bump} one)"
        )
        lines += [f"    {change}" for change in c.changes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = check_registry(args.schemas_dir.resolve() if args.schemas_dir else None)
    print(render(report))
    if report.passed:
        print("ok: every version is numbered for what it changed")
        return 0
    print(f"{len(report.problems)} problem(s):", file=sys.stderr)
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
