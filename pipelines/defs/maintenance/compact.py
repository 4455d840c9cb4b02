"""Compaction in Dagster: the ``compact`` job, the check that proves it kept every row, and the
sensor that runs it after an ingest leaves a partition with too many or too large files.

* ``compact`` is a daily-partitioned op job, not an asset job: rewriting a partition's files
  changes no row, so it must not look like a new materialisation of the event assets (that would
  mark contracts and rollups stale and rebuild them for identical data). The partition key is the
  day (backfills and the UI's partition picker work as for ingest); op config may narrow it to
  some event types (the sensor names those that need it).
* ``compaction_preserved_rows`` is declared on every event table. The compact op records its
  evaluation for each partition it rewrites: rows and checksum before and after, files and bytes.
  It is a proof, not a gate, so the jobs that build a day leave it out (``defs/job_checks.py``);
  executed on its own (from the UI) it re-verifies a compacted partition against the proof
  stamped in its files, and passes at once (footers only) for one written by ingest since.
* The op shares the ``ingest`` pool: each holds a DuckDB capped by the duckdb resource.
"""

import hashlib
import json
from collections.abc import Iterator
from datetime import date

import dagster as dg
from pydantic import Field

from pipelines.defs.keys import COMPACTION_PRESERVED_ROWS
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import CompactionResource, DuckDBSettings, LakeResource
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.lake.storage import Lake
from pipelines.lib.maintenance.compact import (
    ChecksumMismatchError,
    CompactionResult,
    CompactionSettings,
    compact_partition,
    needs_compaction,
    partition_files,
    verify_partition,
)
from pipelines.lib.schemas.registry import event_types

COMPACT_JOB = "compact"
COMPACT_OP = "compact_events"


class CompactConfig(dg.Config):
    event_types: list[str] = Field(default_factory=list)  # empty: every event table of the day


def _evaluation(
    event_type: str, day: date, passed: bool, metadata: dict, description: str
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(event_type),
        check_name=COMPACTION_PRESERVED_ROWS,
        passed=passed,
        metadata=metadata,
        partition=day.isoformat(),
        description=description,
    )


def _mismatch_metadata(error: ChecksumMismatchError) -> dict:
    return {
        "rows_before": error.before.rows,
        "rows_after": error.after.rows,
        "checksum_before": str(error.before.checksum),
        "checksum_after": str(error.after.checksum),
        "published": False,
    }


def _compact_one(
    context: dg.OpExecutionContext,
    lake: Lake,
    event_type: str,
    day: date,
    settings: CompactionSettings,
) -> CompactionResult | None:
    """Compact one event table's partition and record its proof as the check's evaluation. None:
    the rewrite did not hold the same rows, so nothing was published (the failed check says why);
    the op carries on with the other tables and fails at the end."""
    try:
        result = compact_partition(lake, event_type, day, settings, context.log.info)
    except ChecksumMismatchError as error:
        context.log_event(
            _evaluation(event_type, day, False, _mismatch_metadata(error), str(error))
        )
        return None
    if result.compacted:
        context.log_event(
            _evaluation(
                event_type,
                day,
                result.passed,
                result.metadata(),
                f"{result.files_before} files -> {result.files_after}, "
                f"{result.after.rows} rows, checksum unchanged",
            )
        )
    return result


def _totals(done: list[CompactionResult]) -> dict:
    """The op's output metadata: which tables were rewritten, and files and bytes before/after."""
    return {
        "compacted": [r.event_type for r in done if r.compacted],
        "already_compact": [r.event_type for r in done if not r.compacted],
        "files_before": sum(r.files_before for r in done),
        "files_after": sum(r.files_after for r in done),
        "bytes_before": sum(r.bytes_before for r in done),
        "bytes_after": sum(r.bytes_after for r in done),
    }


def build_compact_job(partitions_def: dg.PartitionsDefinition) -> dg.JobDefinition:
    @dg.op(
        name=COMPACT_OP,
        pool="ingest",
        description="Rewrite each event partition of the day into sorted files of about the "
        "target size, publish it only if rows and checksum match, and record the proof as the "
        f"`{COMPACTION_PRESERVED_ROWS}` check.",
    )
    def compact_events(
        context: dg.OpExecutionContext,
        config: CompactConfig,
        lake: LakeResource,
        duckdb: DuckDBSettings,
        compaction: CompactionResource,
    ) -> None:
        known = event_types()
        unknown = sorted(set(config.event_types) - set(known))
        if unknown:
            raise ConfigError(f"event_types {unknown} are not event tables; choose from {known}")
        day = date.fromisoformat(context.partition_key)
        the_lake, settings = lake.lake(), compaction.settings(duckdb)
        done: list[CompactionResult] = []
        failed: list[str] = []
        for event_type in config.event_types or known:
            if not partition_files(the_lake, event_type, day):
                context.log.info(f"{event_type} {day}: not ingested, nothing to compact")
                continue
            result = _compact_one(context, the_lake, event_type, day, settings)
            if result is None:
                failed.append(event_type)
            else:
                done.append(result)
        context.add_output_metadata(_totals(done))
        if failed:
            raise dg.Failure(
                description=f"{day}: the rewrite of {', '.join(failed)} did not hold the same "
                "rows and was not published; those partitions are unchanged (see the "
                f"{COMPACTION_PRESERVED_ROWS} check)",
                metadata={"failed": failed},
            )

    @dg.job(
        name=COMPACT_JOB,
        partitions_def=partitions_def,
        description="Compact one day's event partitions: sorted by request_id then timestamp_ms "
        "into files of the target size, swapped in atomically after a row-count and checksum "
        "proof. Requested by the compaction sensor; run it by hand for any day.",
    )
    def compact():
        compact_events()

    return compact


def build_compaction_checks(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    # One op for every event table's check: a run that selects them (an asset backfill, the UI)
    # pays one step, not one process per table.
    @dg.multi_asset_check(
        name=COMPACTION_PRESERVED_ROWS,
        specs=[
            dg.AssetCheckSpec(
                COMPACTION_PRESERVED_ROWS,
                asset=event_type,
                partitions_def=partitions_def,
                description="A compaction rewrote the partition with the same rows: row count "
                "and a checksum over every column are equal before and after. Recorded by the "
                "compact job; run on its own it re-verifies a compacted partition against the "
                "proof in its files.",
            )
            for event_type in event_types()
        ],
        can_subset=True,
    )
    def compaction_checks(
        context: dg.AssetCheckExecutionContext,
        lake: LakeResource,
        duckdb: DuckDBSettings,
        compaction: CompactionResource,
    ) -> Iterator[dg.AssetCheckResult]:
        day = date.fromisoformat(context.partition_key)
        settings = compaction.settings(duckdb)
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.path):
            event_type = key.asset_key.path[-1]
            verification = verify_partition(lake.lake(), event_type, day, settings)
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=COMPACTION_PRESERVED_ROWS,
                passed=verification.passed,
                metadata=verification.metadata(),
            )

    return compaction_checks


def compaction_request(
    lake: Lake, day: date, settings: CompactionSettings
) -> dg.RunRequest | dg.SkipReason:
    """The compact run a day needs now, keyed by the files it would rewrite, so a repeated
    tick (or the sensor restarted) never requests the same compaction twice."""
    due = [t for t in event_types() if needs_compaction(lake, t, day, settings)]
    if not due:
        return dg.SkipReason(f"{day}: every event partition is within the thresholds")
    listing = {
        t: [(f.path, f.size_bytes) for f in partition_files(lake, t, day)] for t in sorted(due)
    }
    digest = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"{COMPACT_JOB}:{day.isoformat()}:{digest}",
        partition_key=day.isoformat(),
        run_config=dg.RunConfig(ops={COMPACT_OP: CompactConfig(event_types=sorted(due))}),
    )


def build_compaction_sensor(job: dg.JobDefinition) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        name="compaction_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        request_job=job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After a run for a day succeeds (ingest in any job), requests the compact "
        "job for that day's event partitions with more than max_files files or a file above "
        "twice the target size.",
    )
    def compaction_sensor(
        context: dg.RunStatusSensorContext,
        lake: LakeResource,
        duckdb: DuckDBSettings,
        compaction: CompactionResource,
    ) -> dg.RunRequest | dg.SkipReason:
        if context.dagster_run.job_name == COMPACT_JOB:
            return dg.SkipReason("a compact run: its own output needs no compaction")
        try:
            day = date.fromisoformat(context.partition_key or "")
        except ValueError:
            return dg.SkipReason(f"run {context.dagster_run.run_id} is not for a day")
        return compaction_request(lake.lake(), day, compaction.settings(duckdb))

    return compaction_sensor


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    job = build_compact_job(partitions)
    return dg.Definitions(
        jobs=[job],
        asset_checks=[build_compaction_checks(partitions)],
        sensors=[build_compaction_sensor(job)],
    )
