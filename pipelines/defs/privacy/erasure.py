"""Erasure (the right to be forgotten) in Dagster: the ``erase_users`` job, and the sensor that
starts it when a request file lands in ``{root}/requests/erasure/``.

The job is an op job: it rewrites partitions of assets that other jobs build, and records each as
an ``AssetMaterialization`` with the request in its metadata, so an asset's history shows what an
erasure changed. It succeeds only after its own proof scan found no row holding the users' hashes.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from pipelines.defs.resources import (
    DuckDBSettings,
    LakeResource,
    PiiResource,
    PrivacyResource,
    RetentionResource,
    RollupsResource,
)
from pipelines.lib.automation.landing_watch import list_landing
from pipelines.lib.lake.storage import Lake
from pipelines.lib.privacy.audit import landing_notes, write_audit
from pipelines.lib.privacy.erasure import Erasure, Rewrite, erase
from pipelines.lib.privacy.landing_erasure import scrub_landing
from pipelines.lib.privacy.rebuild import Rebuilt, rebuild_rollups
from pipelines.lib.privacy.requests import (
    ErasureRequestError,
    load_request,
    pending_requests,
    request_file,
    retire_request,
)

ERASE_JOB = "erase_users"
ERASE_OP = "erase"


class EraseConfig(dg.Config):
    # Only a file: raw user ids given as run config would be kept by Dagster in its run storage,
    # outside landing/, for as long as the run's history lives.
    request_file: str = Field(
        description="A request in the lake, e.g. requests/erasure/r-2026-001.json "
        '({"request_id": ..., "user_ids": [...]}); raw ids are never taken as run config'
    )


def _materializations(erasure: Erasure, rebuilt: Rebuilt) -> list[dg.AssetMaterialization]:
    meta = {"erasure_request": erasure.request.request_id}
    events = [
        # events/<type> is the asset <type>; quarantine, contracts and ledger are assets too.
        dg.AssetMaterialization(
            r.table.removeprefix("events/"),
            partition=r.day.isoformat(),
            metadata={**meta, "rows_removed": r.rows_removed},
        )
        for r in erasure.rewrites
        if r.day  # exports and landing files are no asset partitions
    ]
    rollups = [
        dg.AssetMaterialization(name, partition=start.isoformat(), metadata=meta)
        for name, start in rebuilt.built
    ]
    return events + rollups


@dg.op(
    name=ERASE_OP,
    description="Erase the request's users from events, quarantine and contracts, rebuild the "
    "rollups they fed, prove nothing holds their hashes, append the audit entry, and move the "
    "request to processed/.",
)
def erase_op(
    context: dg.OpExecutionContext,
    config: EraseConfig,
    lake: LakeResource,
    pii: PiiResource,
    duckdb: DuckDBSettings,
    rollups: RollupsResource,
    privacy: PrivacyResource,
    retention: RetentionResource,
) -> None:
    the_lake = lake.lake()
    try:
        request = load_request(the_lake, config.request_file)
    except (ErasureRequestError, FileNotFoundError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    erasure = erase(
        the_lake,
        request,
        pii.all_secrets(),
        duckdb.memory_limit,
        duckdb.threads,
        log=context.log.info,
    )
    rebuilt = rebuild_rollups(the_lake, erasure.days, rollups.settings(duckdb), context.log.info)
    if privacy.rewrite_landing:
        rewritten = scrub_landing(the_lake, list(request.user_ids), list_landing(the_lake))
        erasure.rewrites += [Rewrite("landing", r.path, None, r.lines_removed) for r in rewritten]
        landing = []
    else:
        landing = landing_notes(
            the_lake, erasure.days, retention.windows().landing_days_after_materialised
        )
    completed = datetime.now(UTC)
    audit = write_audit(the_lake, erasure, rebuilt, landing, completed, context.run_id)
    for event in _materializations(erasure, rebuilt):
        context.log_event(event)
    processed = retire_request(
        the_lake, request, erasure.hashes, keep_raw=privacy.keep_request_files
    )
    context.add_output_metadata(
        {
            "request_id": request.request_id,
            "hashed_ids": len(erasure.hashes),
            "partitions_rewritten": len(erasure.rewrites),
            **{f"rows_removed_{t.replace('/', '_')}": n for t, n in erasure.rows_removed().items()},
            "rollups_rebuilt": len(rebuilt.built),
            "rollups_not_recomputable": len(rebuilt.not_recomputable),
            "landing_still_holding_raw_lines": [folder for folder, _ in landing],
            "proof_rows_left": dg.MetadataValue.json(erasure.proof),
            "audit_file": audit,
            "processed_request": processed,
        }
    )


@dg.job(
    name=ERASE_JOB,
    description="Erase users on request: started by the erasure sensor for each file in "
    "requests/erasure/, or by hand with that file's path as ops.erase.config.request_file.",
)
def erase_users():
    erase_op()


@dg.sensor(
    name="erasure_requests_sensor",
    job=erase_users,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts erase_users for each request file in requests/erasure/ (one run per "
    "file content: a request already handled, or failed, is not started twice).",
)
def erasure_requests_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult:
    the_lake = lake.lake()
    requests = []
    for path, _size in pending_requests(the_lake):
        try:
            with the_lake.open(request_file(the_lake, path)) as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()[:16]
            # The path becomes run config and a run key, both kept in Dagster's storage: a file
            # named after the user (alice@example.com.json) is renamed to an opaque name first.
            path = _opaque_name(the_lake, path, digest)
        except ErasureRequestError:
            # Not read (e.g. a symbolic link): the run fails saying why, once per path.
            digest = "refused"
        requests.append(
            dg.RunRequest(
                run_key=f"erasure:{path}:{digest}",
                run_config=dg.RunConfig(ops={ERASE_OP: EraseConfig(request_file=path)}),
                tags={"telemetry/trigger": "erasure_requests_sensor"},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else "no erasure request waiting",
    )


def _opaque_name(lake: Lake, path: str, digest: str) -> str:
    """``path``, or the name it was moved to: ``<request_id>.json`` when the request parses (its
    id is checked to hold no personal data), else ``request-<digest>.json``; a name that is
    already one of those stays."""
    try:
        request_id = load_request(lake, path).request_id
    except ErasureRequestError:  # not JSON, or not a valid request: named by its content
        request_id = None
    folder = path.rsplit("/", 1)[0]
    name = f"{request_id}.json" if request_id else f"request-{digest}.json"
    if path.rsplit("/", 1)[-1] == name:
        return path
    target = f"{folder}/{name}"
    if lake.exists(target):  # the same id twice: the content tells them apart
        target = f"{folder}/{name.removesuffix('.json')}-{digest}.json"
    lake.fs.mv(lake.path(path), lake.path(target))
    return target


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[erase_users],
        sensors=[erasure_requests_sensor],
    )
