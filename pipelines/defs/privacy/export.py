"""The subject-access export in Dagster: ``export_user`` writes every row held for one user to
``exports/<export id>/`` (rows.jsonl + manifest.json).

The user is named by a request file in ``requests/export/`` (``{"user_id": "..."}``), deleted once
the export is written, so the raw id is never stored by Dagster: the raw id is not accepted as run
config, which Dagster keeps in its run storage.
"""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from pipelines.defs.resources import DuckDBSettings, LakeResource, PiiResource
from pipelines.lib.privacy.exports import export_user
from pipelines.lib.privacy.requests import ExportRequestError, load_export_request

EXPORT_JOB = "export_user"


class ExportConfig(dg.Config):
    request_file: str = Field(
        description='A file in the lake, e.g. requests/export/ticket-42.json: {"user_id": ...}'
    )


@dg.op(
    name="export",
    description="Write every row held for the user (all event types and the quarantine) as JSON "
    "Lines, with a manifest of counts per type and the time range.",
)
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    lake: LakeResource,
    pii: PiiResource,
    duckdb: DuckDBSettings,
) -> None:
    the_lake = lake.lake()
    try:
        # Only a file directly in requests/export/: it is read, then deleted.
        request_file, user_id = load_export_request(the_lake, config.request_file)
    except (ExportRequestError, FileNotFoundError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    export = export_user(
        the_lake,
        user_id,
        pii.all_secrets(),
        datetime.now(UTC),
        duckdb.memory_limit,
        duckdb.threads,
    )
    the_lake.fs.rm(the_lake.path(request_file))
    context.add_output_metadata(
        {
            "export_folder": the_lake.url(export.folder),
            "rows": export.rows,
            **{f"rows_{t}": n for t, n in export.counts.items()},
            "first_event_ts": export.first_event_ts or "",
            "last_event_ts": export.last_event_ts or "",
        }
    )


@dg.job(
    name=EXPORT_JOB,
    description="Access and portability: every row held for one user, as one JSON Lines file "
    "and a manifest, ready to hand over.",
)
def export_user_job():
    export_op()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[export_user_job])
