"""Which partition owns each line of a landing file, remembered per file, so that the four
partitions reading a landing date do not all parse its lines.

Partition D reads landing D-1 .. D+2, and a line belongs to one partition only (its event date
within the window, else its landing date: ``sql/ingest/route_lines.sql``). Without this index each
partition parses every line of the four days to find its own. The first partition to read a file
whole records ``(line_no, owning_date)`` for every non-blank line, under
``_index/owners/<landing path>.parquet``; the others then parse only the lines the index does not
give to another partition.

Why it cannot lose or misplace a line:

* The index is keyed by the file's identity (size and modification time, or the S3 ETag) and by
  every input of the ownership rule (the window, the line-size limit, this module's version). Any
  difference and it is ignored and rewritten.
* It only ever *removes* lines from a partition's staging: those it positively gives to another
  date. A line it does not list (a file that grew, a line it never saw) is staged and routed as
  if there were no index, and the routing SQL still filters by owner.
* It is written only for a file read whole, without an error or a truncation.

It holds line numbers and dates, nothing of a line's content: no identifier reaches it.
Retention deletes it with its landing date; a landing file rewritten by an erasure has a new
identity, so its index no longer applies.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lib.ingest.landing import READS_DAYS_AFTER, READS_DAYS_BEFORE, LandingFile
from pipelines.lib.lake.storage import Lake

INDEX_ROOT = "_index/owners"
# Raise when the routing rule changes in a way the other inputs do not capture.
INDEX_VERSION = 1
_KEY = b"telemetry-lake/owner-index"
OWNERS_SCHEMA = pa.schema([("line_no", pa.int64()), ("owning_date", pa.date32())])


def index_path(landing: LandingFile) -> str:
    return f"{INDEX_ROOT}/{landing.path}.parquet"


def index_dir(landing_dt: date) -> str:
    """The folder of a landing date's indexes (retention deletes it with the landing date)."""
    return f"{INDEX_ROOT}/landing/dt={landing_dt.isoformat()}"


def identity(lake: Lake, landing: LandingFile) -> str | None:
    """What must be unchanged for an index to apply; None when it cannot be known (the index is
    then neither read nor written)."""
    try:
        if lake.is_local:
            st = os.stat(lake.path(landing.open_path))  # follows a symlink to its target
            # ctime too: an in-place rewrite can put mtime back (utime, cp -p, rsync -t), not
            # ctime, which any write or rename moves.
            return f"local:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        info = lake.fs.info(lake.path(landing.open_path))
    except OSError:
        return None
    etag = info.get("ETag") or info.get("etag")
    return f"s3:{info.get('size')}:{etag}" if etag else None


def _key(file_identity: str, max_line_bytes: int) -> str:
    return json.dumps(
        {
            "identity": file_identity,
            "max_line_bytes": max_line_bytes,
            "days_before": READS_DAYS_BEFORE,
            "days_after": READS_DAYS_AFTER,
            "version": INDEX_VERSION,
        },
        sort_keys=True,
    )


def others_lines(
    lake: Lake, landing: LandingFile, file_identity: str | None, max_line_bytes: int, day: date
) -> np.ndarray | None:
    """A mask by line number (``mask[n]``: line n belongs to a partition other than ``day``);
    None when there is no index that applies. Lines past its end are not given away."""
    if file_identity is None:
        return None
    try:
        with lake.open(index_path(landing)) as handle:
            table = pq.read_table(handle)
    except (OSError, pa.ArrowException):
        return None
    meta = table.schema.metadata or {}
    if meta.get(_KEY, b"").decode("utf-8", "replace") != _key(file_identity, max_line_bytes):
        return None
    # A key that matches on a table of another shape (a future format, a hand-made file): not
    # an index this code can read, so none.
    if not table.schema.remove_metadata().equals(OWNERS_SCHEMA):
        return None
    others = pc.not_equal(table["owning_date"], pa.scalar(day, pa.date32()))
    given = table.filter(others)["line_no"].to_numpy()
    if len(given) and given.min() < 1:
        return None
    mask = np.zeros(int(table["line_no"].to_numpy().max(initial=0)) + 1, dtype=bool)
    mask[given] = True
    return mask


def keep_mask(mask: np.ndarray, line_no: pa.Array) -> pa.Array:
    """Which lines of a batch stay: those ``mask`` does not give away (O(batch), however large
    the file)."""
    numbers = line_no.to_numpy()
    inside = np.where(numbers < len(mask), numbers, 0)  # line 0 does not exist: never given
    return pa.array(~mask[inside])


def write(
    lake: Lake, landing: LandingFile, file_identity: str, max_line_bytes: int, owners: pa.Table
) -> None:
    """Record ``owners`` (line_no, owning_date of every non-blank line) for ``landing``. Best
    effort: an index that cannot be written only costs the next reader a parse."""
    table = owners.cast(OWNERS_SCHEMA).replace_schema_metadata(
        {_KEY: _key(file_identity, max_line_bytes)}
    )
    with contextlib.suppress(OSError), lake.staged_file(index_path(landing)) as local:
        pq.write_table(table, local)
