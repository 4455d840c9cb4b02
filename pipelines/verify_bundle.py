"""Check a partner bundle against its manifest: ``python -m pipelines.verify_bundle <dir or
s3://...>`` (also installed as ``verify_bundle``). Exits 0 when every file is there, no file is
extra, and every size, SHA-256, row count and schema matches; otherwise 1, naming the bad file.

For an S3-compatible endpoint (MinIO, R2) set ``TELEMETRY_S3_ENDPOINT_URL`` or pass
``--s3-endpoint-url``; credentials come from the usual AWS chain."""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.lib.bundles.partner_bundle import BundleError, verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify_bundle", description="Check a partner bundle against its manifest."
    )
    parser.add_argument("bundle", help="the bundle folder: a path or s3://bucket/.../YYYY-MM")
    parser.add_argument(
        "--s3-endpoint-url",
        default=os.environ.get("TELEMETRY_S3_ENDPOINT_URL") or None,
        help="an S3-compatible endpoint (default: TELEMETRY_S3_ENDPOINT_URL, else AWS)",
    )
    args = parser.parse_args(argv)
    options = {}
    if args.bundle.startswith("s3://") and args.s3_endpoint_url:
        options = {"client_kwargs": {"endpoint_url": args.s3_endpoint_url}}
    try:
        verified = verify_bundle(args.bundle, options)
    except BundleError as error:
        print(f"verify_bundle: FAILED: {error}", file=sys.stderr)
        return 1
    print(
        f"verify_bundle: OK: bundle {verified.bundle} at {verified.location}: "
        f"{verified.files} files, {verified.rows} rows, every checksum matches"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
