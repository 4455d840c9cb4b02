"""``docs/contracts/partitioning.md``: the lake's layout, the late-arrival window, which partition
owns a line, deduplication and atomicity, all with the sizes and paths the code uses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from pipelines.lib.docs import markdown as md
from pipelines.lib.docs.contract_pages.facts import (
    EXAMPLE_DAY,
    TYPE_PATTERN,
    hive_keys,
    ledger_column,
    pattern,
    reason,
    relative_day,
    window,
)
from pipelines.lib.ingest.landing import LANDING_SUFFIXES
from pipelines.lib.lake.paths import (
    DATA_DOCS_DIR,
    contracts_file,
    events_file,
    landing_dir,
    ledger_file,
    quality_file,
    quarantine_file,
)
from pipelines.lib.lake.settings import DEFAULT_FIRST_DATE
from pipelines.lib.schemas.registry import EventSchema, load_event_schemas

PARTITIONING_PAGE = "contracts/partitioning.md"

_PARTITIONING = """\
# Partitioning, late arrivals and idempotency

{note}

## Layout

Paths are relative to the lake root, a local folder (default `data/lake`) or `s3://bucket/prefix`,
and use `/` on every backend.

```text
<lake root>/
{tree}
```

{zones}

`<event_type>` is one of {types}.

## Naming rules

- Partition folders are Hive-style `key=value` ({hive_keys}), so DuckDB prunes on them and, with
  `hive_partitioning = true`, adds them as columns.
- Every date is a UTC calendar day written `YYYY-MM-DD` (ISO 8601).
- Landing files sit directly in `{landing}/` (no sub-folders) and end in {suffixes}; other names
  (an upload's temporary file, a dot-file) are not landing files and are ignored. The `dt=` folder
  is the file's **arrival date** A: the UTC day it was delivered, whatever the events inside say.
- Every landing file gets a ledger row, read or not. Whether it is gzip is decided by its first
  two bytes (`1f 8b`), not its name: a plain file named `.gz` is read as plain text, gzip data
  named `.jsonl` is inflated, and either mismatch is noted in {file_errors} (several
  concatenated gzip members are fine). A symbolic link is followed only when it resolves inside
  `landing/`; one leading elsewhere or to nothing, a folder, or a file that cannot be opened is
  not read, and {file_errors} says why. A name that is not UTF-8 is recorded with each
  undecodable byte written as `\\xNN` (`caf\\xe9.jsonl`). The `landing_files_read` check warns
  about every file with a {file_errors} note.
- A partition is a folder, read whole (every `*.parquet` in it) and replaced whole: a build
  writes one file named `{part}`, even when it has no rows, and publishes it as the folder's only
  file; compaction may rewrite an event partition into several sorted `part-NNNNN-<tag>.parquet`
  files (see [../operations.md](../operations.md)). Nothing is ever appended.
- While a partition is being written its new files sit under `.staging/` at the lake root (a
  day's ingest tables under `_publish/staging/`), which no table's glob matches, and the folder is
  swapped in at once (on Linux: readers see every old file or every new one, never a mix).

## Days are UTC

An event's date E is the UTC date of its `timestamp_ms`; `event_ts` stores the same instant as a
UTC timestamp, and DuckDB runs with `TimeZone = 'UTC'`. Partitions are daily UTC partitions from
`TELEMETRY_FIRST_DATE` (default {first_date}). Partition D is built by one run that writes every
`event_date=D` file: one per event type, the quarantine and the ledger.

## The late-arrival window

Partition D reads the landing folders {reads}: {reads_why}. Conversely a file that arrives on A is
read by partitions {readers}, and each of its lines belongs to exactly one of them:

- a line belongs to its event date E when E is within [{own_from}, {own_to}], the partitions that
  read A;
- otherwise partition A keeps it, in quarantine: {late} when E < {own_from}, {future} when
  E > {own_to};
- a line with no readable event date (not JSON, or no numeric `timestamp_ms` in range) belongs
  to A, where it is quarantined for whatever is wrong with it.

For example, with A = {example}:

{example_table}

So partition D is complete only once landing {last_read} is complete, and a file that lands on A
after some of the partitions {readers} were built is picked up only when they are built again.
The ledger column {late_rows} counts the rows of D that arrived after D.

## Deduplication

`event_id` identifies an event. Among the lines partition D owns (every event type, every landing
file it reads) that passed all checks, the first copy of an `event_id` in (landing `dt`, file
name, line number) order is kept. A later copy with the same content (the same value in every
stored field, whatever the key order or spacing) is dropped and counted in the ledger column
{duplicates}; a later
copy with different content is quarantined as {conflicting}. `event_id`s are compared exactly
(case matters), and copies whose timestamps fall on different days are in different partitions,
so they are never compared.

## Atomic replace

Every output file is written whole, then published in one step, so a reader sees the previous
version or the new one and never a half-written file. The seven tables of a day (the five event
tables, the quarantine and the ledger) are published as one unit (`pipelines/lib/lake/publish.py`):

1. every table is written whole under `_publish/staging/event_date=D.<publish id>/`, the publish
   id in each Parquet footer (locally flushed to disk; on S3 one object per table);
2. the journal `_publish/event_date=D.json`, naming every staged folder and its partition, is
   written atomically: the commit point;
3. each partition folder is swapped in (locally one rename exchange; on S3 a server-side copy
   over `part-00000.parquet`);
4. the journal is removed, then the staging.

A run that stops before the journal leaves every table of the day at its previous version; one
that stops after it leaves the journal, which the next run of the day, a contracts or rollups run
and the `day_publish_recovery` sensor roll forward before anything reads the day. Once that has
run, the ledger and the tables describe the same version. Each fault and what recovery does:
[../operations.md](../operations.md#atomic-day-publish).

## Idempotency

Building partition D again reads the same landing files and overwrites the same paths with the
same rows (events ordered by `timestamp_ms`, then `event_id`), as long as landing
{reads_range} and the PII key have not changed. Nothing is appended and no second part file is
created, so retries and backfills are safe. A different PII key gives different hashes and a
different `pii_key_id`.
"""


def _zones() -> list[tuple[str, str]]:
    landing = pattern(landing_dir)
    return [
        (
            f"{landing}/<name>{LANDING_SUFFIXES[0]}",
            "raw lines as producers sent them, raw identifiers included",
        ),
        (pattern(events_file, TYPE_PATTERN), "valid, deduplicated, hashed events of one day"),
        (pattern(quarantine_file), "rejected lines of one day, redacted, with their reason"),
        (pattern(ledger_file), "per landing file: where each of its lines went"),
        (pattern(contracts_file), "every contract violation of one day, one row each"),
        (pattern(quality_file), "every contract rule's rate for one day"),
        (
            "rollups/<name>/<event_date|week_start|month_start>=YYYY-MM-DD/part-00000.parquet",
            "one rollup of one day, week or month (see rollups.md)",
        ),
        (f"{DATA_DOCS_DIR}/index.html", "the Great Expectations Data Docs of the latest run"),
    ]


def _tree() -> str:
    entries = [path for path, _ in _zones()]
    return "\n".join(
        ("└── " if i == len(entries) - 1 else "├── ") + path for i, path in enumerate(entries)
    )


def render_partitioning(schemas: Mapping[str, EventSchema] | None = None) -> str:
    """``docs/contracts/partitioning.md``: layout, window, ownership, dedup, atomicity."""
    schemas = dict(sorted((schemas or load_event_schemas()).items()))
    w = window()
    reads = [relative_day("D", n) for n in w.reads]
    why = []
    if w.reads[0] < 0:
        why.append(f"{', '.join(reads[: -w.reads[0]])} for clocks running ahead of UTC")
    if w.reads[-1] > 0:
        why.append(f"{', '.join(reads[-w.reads[-1] :])} for lines that arrive late")
    example = EXAMPLE_DAY
    own_from, own_to = (example + timedelta(days=n) for n in (w.readers[0], w.readers[-1]))
    day = timedelta(days=1)
    example_rows = [
        [f"{own_from - day} or earlier", f"{example} (quarantine)", reason("late_arrival")],
        [f"{own_from} .. {own_to}", "E (its own day)", "stored (or rejected for another reason)"],
        [f"{own_to + day} or later", f"{example} (quarantine)", reason("future_timestamp")],
        ["unreadable", f"{example} (quarantine)", "whatever is wrong with the line"],
    ]
    paths = (
        pattern(landing_dir) + "/",
        pattern(events_file, TYPE_PATTERN),
        pattern(ledger_file),
    )
    hive = list(dict.fromkeys(k for rel in paths for k in hive_keys(rel)))
    text = _PARTITIONING.format(
        note=md.generated_note("the ingest code (window sizes, reasons, paths)"),
        tree=_tree(),
        zones=md.table(
            ["zone", "holds"], [[md.code(p.split("/", 1)[0] + "/"), w] for p, w in _zones()]
        ),
        types=", ".join(md.code(t) for t in schemas),
        hive_keys=", ".join(md.code(k) for k in hive),
        landing=pattern(landing_dir),
        suffixes=" or ".join(md.code(s) for s in LANDING_SUFFIXES),
        part=pattern(events_file, TYPE_PATTERN).rsplit("/", 1)[-1],
        first_date=DEFAULT_FIRST_DATE.isoformat(),
        reads=" .. ".join((reads[0], reads[-1])),
        reads_range=f"{reads[0]} .. {reads[-1]}",
        reads_why="; ".join(why),
        readers=f"{relative_day('A', w.readers[0])} .. {relative_day('A', w.readers[-1])}",
        own_from=relative_day("A", w.readers[0]),
        own_to=relative_day("A", w.readers[-1]),
        late=reason("late_arrival"),
        future=reason("future_timestamp"),
        example=example.isoformat(),
        example_table=md.table(["event date E", "belongs to partition", "outcome"], example_rows),
        last_read=reads[-1],
        late_rows=ledger_column("rows_landed_late"),
        duplicates=ledger_column("duplicates"),
        file_errors=ledger_column("file_errors"),
        conflicting=reason("conflicting_duplicate"),
    )
    return text.rstrip("\n") + "\n"
