"""The quarantine of a day: every rejected line with its reason, redacted (identifiers hashed, free
text scrubbed) as a stream of bounded row groups; the lines of erased users left out and counted."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.ingest import pii, pii_redact
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.staging import text_batch_rows
from pipelines.lib.lake.sql import load_sql
from pipelines.lib.schemas.registry import kept_field_names

if TYPE_CHECKING:
    from pipelines.lib.ingest.partition import IngestSettings


QUARANTINE_SCHEMA = pa.schema(
    [
        ("landing_file", pa.string()),
        ("landing_dt", pa.date32()),
        ("line_no", pa.int64()),
        ("line_bytes", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("event_type", pa.string()),
        ("event_id", pa.string()),
        ("event_date_read", pa.date32()),
        ("text", pa.string()),
        ("text_truncated", pa.bool_()),
        ("pii_key_id", pa.string()),
    ]
)


# Redacted quarantine rows are gathered into row groups of about this many rows or bytes.
_QUARANTINE_GROUP_ROWS = 64 * 1024
_QUARANTINE_GROUP_BYTES = 64 << 20


# What a cut line loses at its end: the partial word, then a run of digits and separators.
_CUT_WORD = re.compile(r"[^\s\"',;{}\[\]]*\Z")
_CUT_NUMBER_RUN = re.compile(r"[0-9][0-9\s.()/_:+-]*\Z")


def _redact_batch(batch: pa.RecordBatch, key: PiiKey, kept: frozenset[str], limit: int) -> pa.Table:
    """Quarantined lines (``quarantine_lines.sql``) with identifiers hashed and free text scrubbed.
    Python redacts each distinct text (and detail) of the batch once: a flood of one bad line
    costs one redaction per batch."""
    text = batch.column("line_text")
    # Not UTF-8 or too large (no text): a bounded excerpt of the bytes, decoded.
    excerpt = pc.binary_slice(batch.column("raw_bytes"), 0, limit * 4)
    cut = pc.fill_null(pc.less(pc.binary_length(excerpt), batch.column("line_bytes")), False)

    def redacted(value: str) -> tuple[str, bool]:
        # Only what can be shown is redacted: the scrubber's time grows faster than the text, and
        # one hostile 1 MiB line must not hold the run for hours. A cut line is redacted by
        # pattern (it no longer parses), with the same hashes.
        value = value.rstrip("\r\n")
        shown = value[:limit]
        if shown != value:
            # The cut may fall inside a value the scrubber would know whole (an address short of
            # a letter, a card short of its check digit): its last word goes, then any number run.
            shown = _CUT_NUMBER_RUN.sub("", _CUT_WORD.sub("", shown))
        # A lone surrogate (legal in Python's JSON, not in UTF-8) must not fail the run.
        out = pii_redact.redact_line(shown, key.secret, kept).encode("utf-8", "replace")
        return out[:limit].decode("utf-8", errors="ignore"), len(out) > limit or shown != value

    def per_distinct(values: pa.Array, decode: Callable[[Any], str]) -> tuple[pa.Array, pa.Array]:
        encoded = pc.dictionary_encode(values)
        done = [redacted(decode(v)) for v in encoded.dictionary.to_pylist()]
        shown = pa.array([d[0] for d in done], pa.string())
        long = pa.array([d[1] for d in done], pa.bool_())
        return pc.take(shown, encoded.indices), pc.take(long, encoded.indices)

    from_text, text_long = per_distinct(text, lambda v: v)
    from_bytes, bytes_long = per_distinct(
        pc.if_else(pc.is_valid(text), pa.scalar(None, excerpt.type), pc.fill_null(excerpt, b"")),
        lambda v: v.decode("utf-8", errors="replace"),
    )
    has_text = pc.is_valid(text)
    shown = pc.if_else(has_text, from_text, from_bytes)
    truncated = pc.if_else(has_text, text_long, pc.or_(cut, pc.fill_null(bytes_long, False)))
    detail = pc.dictionary_encode(batch.column("detail"))
    scrubbed = pa.array([pii.scrub_text(d) for d in detail.dictionary.to_pylist()], pa.string())
    columns = {
        name: batch.column(name)
        for name in QUARANTINE_SCHEMA.names
        if name in batch.schema.names and name != "detail"
    }
    columns.update(
        detail=pc.take(scrubbed, detail.indices),
        text=shown,
        text_truncated=truncated,
        pii_key_id=pa.array([key.key_id] * batch.num_rows, pa.string()),
    )
    return pa.table({n: columns[n] for n in QUARANTINE_SCHEMA.names}).cast(QUARANTINE_SCHEMA)


def _drop_erased(
    quarantine: pa.Table, erased: list[str], per_file: dict[str, Counter[str]]
) -> pa.Table:
    """Quarantined lines that name an erased user (hashed, in their redacted text) are dropped;
    ``per_file`` counts them per landing file and reason, for the ledger's ``erased``."""
    if not erased or quarantine.num_rows == 0:
        return quarantine
    hits = pc.fill_null(pc.match_substring_regex(quarantine["text"], "|".join(erased)), False)
    dropped = quarantine.filter(hits)
    if dropped.num_rows == 0:
        return quarantine
    counts = dropped.group_by(["landing_file", "reason"]).aggregate([("line_no", "count")])
    for landing_file, reason, n in zip(
        counts["landing_file"].to_pylist(),
        counts["reason"].to_pylist(),
        counts["line_no_count"].to_pylist(),
        strict=True,
    ):
        per_file.setdefault(landing_file, Counter())[f"quarantined_{reason}"] += n
    return quarantine.filter(pc.invert(hits))


def redacted_quarantine(
    con: duckdb.DuckDBPyConnection,
    key: PiiKey,
    settings: IngestSettings,
    erased: list[str],
    per_file: dict[str, Counter[str]],
) -> pa.RecordBatchReader:
    """The quarantine, redacted, as a stream of row groups: read from DuckDB in bounded batches,
    redacted batch by batch, the lines of erased users left out (counted in ``per_file``), so
    millions of quarantined lines never sit in Python at once (a cold path: bad lines)."""
    kept = kept_field_names()
    limit = settings.quarantine_text_bytes
    source = con.sql(load_sql("ingest/quarantine_lines.sql")).to_arrow_reader(
        text_batch_rows(settings)
    )

    def groups() -> Iterator[pa.RecordBatch]:
        held: list[pa.Table] = []
        rows = size = 0
        for batch in source:
            table = _drop_erased(_redact_batch(batch, key, kept, limit), erased, per_file)
            held.append(table)
            rows, size = rows + table.num_rows, size + table.nbytes
            if rows >= _QUARANTINE_GROUP_ROWS or size >= _QUARANTINE_GROUP_BYTES:
                yield from pa.concat_tables(held).combine_chunks().to_batches()
                held, rows, size = [], 0, 0
        if rows:
            yield from pa.concat_tables(held).combine_chunks().to_batches()

    return pa.RecordBatchReader.from_batches(QUARANTINE_SCHEMA, groups())
