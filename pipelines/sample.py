"""Write sample telemetry into a lake's landing zone.

    python -m pipelines.sample --root data/lake --start 2025-06-02 --days 7 --seed 7
    python -m pipelines.sample --root s3://bucket/lake --days 1 --lines-per-day 1000000

Every numeric knob of ``SampleConfig`` is an option (``--requests-per-day``, ``--ctr``,
``--duplicate-rate``, ...). Progress goes to stderr; a JSON summary goes to stdout. The expected
ingest results are in ``{root}/landing/sample_manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import MISSING, fields
from datetime import date

from pipelines.lib.sample.config import Experiment, SampleConfig
from pipelines.lib.sample.generator import generate, manifest_path, progress_bar

_NUMERIC = {"int": int, "float": float}


def _experiments(text: str) -> tuple[Experiment, ...]:
    """``ID:SHARE[:BUCKET/BUCKET...]`` separated by commas."""
    out = []
    for spec in filter(None, (s.strip() for s in text.split(","))):
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise argparse.ArgumentTypeError(f"bad experiment {spec!r}: use ID:SHARE[:B1/B2]")
        buckets = tuple(parts[2].split("/")) if len(parts) == 3 else ("control", "treatment")
        out.append(Experiment(parts[0], float(parts[1]), buckets))
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sample",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--root", required=True, help="lake root: a local path or fsspec URL")
    parser.add_argument("--start", type=date.fromisoformat, default=SampleConfig.start)
    parser.add_argument(
        "--experiments",
        type=_experiments,
        default=None,
        help="ID:SHARE[:B1/B2],... (default: exp-ranker-v2:0.6,exp-diversity:0.4)",
    )
    parser.add_argument(
        "--lines-per-day",
        type=int,
        default=None,
        help="set --requests-per-day to reach about this many landing lines a day "
        f"(~{SampleConfig().lines_per_request():.2f} per request with the defaults)",
    )
    parser.add_argument(
        "--no-clean",
        dest="clean",
        action="store_false",
        help="keep existing landing files instead of removing them first",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    for f in fields(SampleConfig):
        kind = _NUMERIC.get(str(f.type))
        if kind is None:
            continue
        default = f.default if f.default is not MISSING else None
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)
    return parser


def config_from_args(args: argparse.Namespace) -> SampleConfig:
    values = {f.name: getattr(args, f.name) for f in fields(SampleConfig) if hasattr(args, f.name)}
    if values.get("experiments") is None:
        values.pop("experiments", None)
    config = SampleConfig(**values)
    if args.lines_per_day is not None:
        config = config.for_lines_per_day(args.lines_per_day)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    expected = round(config.valid_events_per_request() * config.requests_per_day * config.days)
    began = time.monotonic()
    if args.quiet:
        manifest = generate(config, args.root, clean=args.clean)
    else:
        with progress_bar(expected, "sample") as progress:
            manifest = generate(config, args.root, on_progress=progress.update, clean=args.clean)
    seconds = time.monotonic() - began
    lines = sum(f["lines"] for f in manifest["files"].values())
    summary = {
        "manifest": manifest_path(args.root),
        "start": config.start.isoformat(),
        "days": config.days,
        "requests_per_day": config.requests_per_day,
        "files": len(manifest["files"]),
        "lines": lines,
        "seconds": round(seconds, 3),
        "lines_per_second": round(lines / seconds) if seconds > 0 else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
