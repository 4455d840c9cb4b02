"""Refuse a lake root that is not the lake (no Dagster here).

A run pointed at the wrong place must fail, not succeed over an empty lake: ingest would publish
empty partitions there, sensors would find no landing files, and the real lake would look
untouched. So the configured root must already exist: a local folder is checked when a run
starts (``LakeResource.setup_for_execution``), and an S3 bucket that does not exist fails the
first request made to it (``lib/lake/s3.py``), with a one-line message naming the bucket and
TELEMETRY_LAKE_ROOT instead of botocore's. Only the sample generator and the demo create a lake
(``pipelines.sample``, ``pipelines.demo``); neither goes through this check.

A relative TELEMETRY_LAKE_ROOT means a folder of the project, whatever the working directory of
the process that reads it (``settings.lake_root`` resolves it).
"""

from __future__ import annotations

import os

from pipelines.lib.lake.errors import ConfigError

VARIABLE = "TELEMETRY_LAKE_ROOT"
# How a run creates a lake, for the message that refuses a missing one.
_CREATE = (
    "create it first (`python -m pipelines.demo` builds data/lake; `python -m pipelines.sample "
    "--root <folder>` writes sample landing files there)"
)


class LakeRootError(ConfigError):
    """The configured lake root does not exist (a local folder, or an S3 bucket); the message is
    one line naming TELEMETRY_LAKE_ROOT."""


def check_local_root(root: str, configured: str | None) -> None:
    """Refuse a local lake ``root`` (resolved, absolute) that is not an existing folder;
    ``configured`` is the value as set, named in the message when it differs."""
    path = root.removeprefix("file://")
    if os.path.isdir(path):
        return
    what = "is not a folder" if os.path.exists(path) else "does not exist"
    given = ""
    if configured and configured.strip() != root:
        given = f" ({VARIABLE}={configured.strip()!r}, resolved against the project root)"
    raise LakeRootError(
        f"the lake root {path} {what}{given}: set {VARIABLE} to the lake's folder, or {_CREATE}"
    )


def missing_bucket(bucket: str, endpoint: str, operation: str) -> LakeRootError:
    """The error for an S3 request (``operation``) to a bucket that does not exist."""
    return LakeRootError(
        f"the S3 bucket {bucket!r} does not exist at {endpoint} ({operation}): set {VARIABLE} to "
        f"s3://<an existing bucket>/<prefix> (and TELEMETRY_S3_ENDPOINT_URL to its endpoint), or "
        f"create the bucket"
    )


def describe(root: str, configured: str | None) -> str | None:
    """What a run logs about its lake root when the configured value was relative (resolved
    against the project root); None when it was used as written."""
    if configured and configured.strip() != root:
        return (
            f"lake root: {root} ({VARIABLE}={configured.strip()!r} is relative: resolved against "
            "the project root, not the working directory)"
        )
    return None
