"""Check this machine's configuration before launching anything: ``python -m pipelines.doctor``.

Prints one line per check (``ok:``, ``warning:``, ``error:``); each error names the variable and
what to set. Exits 0 without errors, 1 with any, never with a traceback. ``--partition
YYYY-MM-DD`` (repeatable) also checks daily partitions about to be launched (e.g. by ``dg launch
--partition``), which exist only from TELEMETRY_FIRST_DATE to yesterday. The checks are
``pipelines/lib/setup/doctor_checks.py``; every run makes the same ones before its first step.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from pipelines.lib.setup import doctor_checks as doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.doctor",
        description="Check the lake root, PII keys, first date, S3 endpoint and DuckDB memory "
        "settings in this environment; exit 1 on any problem.",
    )
    parser.add_argument(
        "--partition",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="a daily partition to be launched: check that it exists (repeatable)",
    )
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="do not probe the S3 endpoint of an s3:// lake root",
    )
    args = parser.parse_args(argv)
    today = datetime.now(UTC).date()
    findings = doctor.check(
        os.environ, today, probe_s3=not args.no_network, partitions=args.partition
    )
    for finding in findings:
        print(finding.line())
    errors = sum(f.level == doctor.ERROR for f in findings)
    warnings = sum(f.level == doctor.WARNING for f in findings)
    if errors:
        print(f"doctor: {errors} problem(s), {warnings} warning(s): fix the lines marked error")
        return 1
    print(f"doctor: no problems, {warnings} warning(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
