"""The ingest assets: one per event type plus quarantine and ledger, built in one pass per day."""

from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from pipelines.defs.job_checks import without_watched_checks
from pipelines.defs.keys import INGEST_GROUP, LEDGER, OWNERS, QUARANTINE
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource, lake_on_s3
from pipelines.lib.ingest.ledger import ledger_schema
from pipelines.lib.ingest.partition import IngestResult, compiled_schemas, ingest_partition
from pipelines.lib.ingest.quarantine import QUARANTINE_SCHEMA
from pipelines.lib.ingest.wipe_guard import SAMPLE_SIZE, MissingLandingFilesError
from pipelines.lib.schemas.registry import event_types
from pipelines.lib.schemas.sql_compiler import CompiledSchema
from pipelines.lib.schemas.stored_shape import ADDED_COLUMNS


def _column_schema(compiled: CompiledSchema) -> dg.TableSchema:
    columns = [
        dg.TableColumn(
            c.name,
            c.sql_type,
            description=(f"[PII {c.pii}, {c.pii_handling}] " if c.pii_handling else "")
            + c.description,
        )
        for c in compiled.columns
    ]
    added_types = {"event_ts": "timestamptz", "landing_dt": "date", "landing_line": "bigint"}
    columns += [
        dg.TableColumn(name, added_types.get(name, "varchar"), description=text)
        for name, text in ADDED_COLUMNS.items()
    ]
    return dg.TableSchema(columns=columns)


def arrow_table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def _specs(kinds: set[str]) -> list[dg.AssetSpec]:
    common = {"group_name": INGEST_GROUP, "owners": OWNERS, "kinds": kinds}
    specs = [
        dg.AssetSpec(
            event_type,
            description=(
                f"Valid `{event_type}` events of one UTC day: schema-checked, deduplicated on "
                f"event_id, identifiers keyed-hashed. events/event_type={event_type}/"
                "event_date=D/"
            ),
            metadata={"dagster/column_schema": _column_schema(compiled)},
            **common,
        )
        for event_type, compiled in compiled_schemas().items()
    ]
    specs.append(
        dg.AssetSpec(
            QUARANTINE,
            description="Every rejected line of the day with its reason, landing file and line, "
            "redacted (ids hashed, free text scrubbed). quarantine/event_date=D/",
            metadata={"dagster/column_schema": arrow_table_schema(QUARANTINE_SCHEMA)},
            **common,
        )
    )
    specs.append(
        dg.AssetSpec(
            LEDGER,
            description="Per landing file: lines taken = rows written + quarantined + duplicates. "
            "ledger/event_date=D/",
            metadata={"dagster/column_schema": arrow_table_schema(ledger_schema(event_types()))},
            **common,
        )
    )
    return specs


def _summary(result: IngestResult) -> str:
    lines = [
        f"**{result.day}**: {result.lines_taken} lines from {result.files} landing files",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| rows `{t}` | {n} |" for t, n in result.rows.items()],
        *[f"| quarantined `{r}` | {n} |" for r, n in result.quarantined.items()],
        f"| duplicates dropped | {result.duplicates} |",
        f"| erased (users who asked) | {result.erased} |",
    ]
    if result.truncated_files:
        lines += ["", f"Truncated files: {', '.join(result.truncated_files)}"]
    return "\n".join(lines)


def ingest_metadata(result: IngestResult) -> dict[str, dict[str, Any]]:
    """Each ingest asset's materialisation metadata for one day's ``result``."""
    common = {
        "seconds": round(result.seconds, 3),
        "late_share": round(result.late_share, 6),
    }
    metadata: dict[str, dict[str, Any]] = {
        event_type: {
            "dagster/row_count": rows,
            "rows": rows,
            "bytes_written": result.bytes_written[event_type],
            **common,
        }
        for event_type, rows in result.rows.items()
    }
    metadata[QUARANTINE] = {
        "dagster/row_count": result.quarantined_total,
        "quarantined": result.quarantined_total,
        **{f"quarantined_{r}": n for r, n in result.quarantined.items()},
        "truncated_files": len(result.truncated_files),
        "bytes_written": result.bytes_written[QUARANTINE],
        **common,
    }
    metadata[LEDGER] = {
        "lines_taken": result.lines_taken,
        "rows": result.rows_total,
        "quarantined": result.quarantined_total,
        "duplicates": result.duplicates,
        "erased": result.erased,
        "landing_files": result.files,
        "bytes_written": result.bytes_written[LEDGER],
        "summary": dg.MetadataValue.md(_summary(result)),
        **common,
    }
    return metadata


def build_ingest_assets(
    partitions_def: dg.PartitionsDefinition, on_s3: bool = False
) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="ingest",
        specs=_specs({"duckdb", "parquet", "s3"} if on_s3 else {"duckdb", "parquet"}),
        partitions_def=partitions_def,
        can_subset=False,
        pool="ingest",
        description="Read landing dt D-1..D+2, keep day D's lines, validate, deduplicate, hash "
        "and write events, quarantine and ledger for D.",
    )
    def ingest(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        pii: PiiResource,
        duckdb: DuckDBSettings,
    ):
        day = date.fromisoformat(context.partition_key)
        target = lake.lake()
        # One writer per partition, also between runs that meet no queue (two command lines).
        with lake.partition_lease(
            target, "ingest", context.partition_key, context.run.run_id, context.log.info
        ) as lease:
            try:
                result = ingest_partition(
                    target,
                    day,
                    pii.keyring(),
                    duckdb.ingest_settings(),
                    log=context.log.info,
                    still_held=lease.verify,
                )
            except MissingLandingFilesError as exc:
                # The operator's next step is in the message; a stack trace would only bury it.
                raise dg.Failure(
                    description=str(exc),
                    metadata={
                        "missing_landing_files": len(exc.missing),
                        "sample_missing_landing_files": sorted(exc.missing)[:SAMPLE_SIZE],
                    },
                ) from exc
        for asset_key, metadata in ingest_metadata(result).items():
            yield dg.MaterializeResult(asset_key=asset_key, metadata=metadata)

    return ingest


@dg.definitions
def defs() -> dg.Definitions:
    partitions = daily_partitions()
    return dg.Definitions(
        assets=dg.with_source_code_references(
            [build_ingest_assets(partitions, on_s3=lake_on_s3())]
        ),
        jobs=[
            dg.define_asset_job(
                "ingest_daily",
                selection=without_watched_checks(dg.AssetSelection.groups(INGEST_GROUP)),
                description="Ingest one day: read landing dt D-1..D+2, write D's events, "
                "quarantine and ledger, then check that the ledger balances.",
            )
        ],
    )
