"""Resources: where the lake is, the PII keys, and how much DuckDB may use. Read from the
environment when definitions load (``EnvVar``), validated when a run starts."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.lib import lake_root, settings
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest import IngestSettings
from pipelines.lib.keyring import Keyring
from pipelines.lib.lease import Lease, Owner
from pipelines.lib.paths import default_lake_root
from pipelines.lib.rollups.run import RollupSettings
from pipelines.lib.slo.config import SloConfig, load_slo_config
from pipelines.lib.storage import Lake, S3Timeouts


class LakeResource(dg.ConfigurableResource):
    """The lake's root: a local folder (default ``data/lake``; a relative path is a folder of
    the project, whatever the working directory) or ``s3://bucket/prefix``, which must exist
    (lib/lake_root.py: only the demo and the sample generator create a lake); and its work root
    (``TELEMETRY_WORK_ROOT``), under which each run's DuckDB spills and S3 uploads are staged in
    a private folder (default ``{root}/_work/tmp`` for a local lake, the system temp dir's
    ``telemetry-lake/`` for S3). On S3 every request is bounded: connect and read
    timeouts and retries (``TELEMETRY_S3_*``, lib/s3.py). Partition writers take a lease in the
    lake (lib/lease.py), waiting ``lease_wait_s`` for another holder before refusing."""

    root: str | None = None
    s3_endpoint_url: str | None = None
    work_root: str | None = None
    s3_connect_timeout_s: str | None = None
    s3_read_timeout_s: str | None = None
    s3_retries: str | None = None
    lease_wait_s: str | None = None
    lease_ttl_s: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._s3_timeouts()
        settings.lease_wait_s(self.lease_wait_s)
        settings.lease_ttl_s(self.lease_ttl_s)
        root = self._root()
        if (note := lake_root.describe(root, self.root)) and context.log:
            context.log.info(note)
        # A local root is checked here, before any step reads or writes; an S3 bucket on its first
        # request (no request is made while resources are built).
        if "://" not in root or root.startswith("file://"):
            lake_root.check_local_root(root, self.root)

    def _s3_timeouts(self) -> S3Timeouts:
        return settings.s3_timeouts(
            self.s3_connect_timeout_s, self.s3_read_timeout_s, self.s3_retries
        )

    def _root(self) -> str:
        return settings.lake_root(self.root, default_lake_root())

    def lake(self) -> Lake:
        root = self._root()
        options = {}
        if root.startswith("s3://") and self.s3_endpoint_url:
            options = {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return Lake(root, options, settings.work_root(self.work_root), self._s3_timeouts())

    def partition_lease(
        self, lake: Lake, group: str, partition: str, run_id: str, log: Callable[[str], Any]
    ) -> Lease:
        """The lease a run takes on ``partition`` of ``group`` before writing it."""
        return Lease(
            lake,
            group,
            partition,
            Owner.current(run_id),
            ttl_s=settings.lease_ttl_s(self.lease_ttl_s),
            wait_s=settings.lease_wait_s(self.lease_wait_s),
            log=log,
        )


class PiiResource(dg.ConfigurableResource):
    """The keyed-hashing secrets: one key (``key``), or dated keys to rotate (``keys_json``, a JSON
    list, or ``keys_file``, a JSON/YAML file of the same list), with the days after a rotation
    during which rows also carry the previous key's hash (``overlap_days``). Without any key,
    development runs use a public key (with a warning) and production runs fail before touching
    any data."""

    key: str | None = None
    # Not `keys`: Dagster turns the resource into a dict, which would call a `keys` attribute.
    keys_json: str | None = None
    keys_file: str | None = None
    overlap_days: str | None = None
    environment: str | None = None
    # The first daily partition: the earliest key must be active on it.
    first_date: str | None = None

    def _keyring(self) -> tuple[Keyring, str | None]:
        return settings.pii_keyring(
            self.key,
            self.environment,
            keys=self.keys_json,
            keys_file=self.keys_file,
            overlap=self.overlap_days,
            first_date=settings.first_partition_date(self.first_date),
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        _, warning = self._keyring()
        if warning and context.log:
            context.log.warning(warning)

    def keyring(self) -> Keyring:
        return self._keyring()[0]


class DuckDBResource(dg.ConfigurableResource):
    """Bounds for each run's in-memory DuckDB: memory is capped, and beyond it DuckDB spills to
    a private folder of the run under the lake's work root (``LakeResource.work_root``). With
    them, ingest's settings: ``accept_missing_landing`` lists landing dates whose files, listed
    by a day's ledger but gone (not retired), a re-ingest may publish without, losing their rows;
    ingest refuses otherwise (lib/wipe_guard.py, docs/operations.md). Set it for one run only,
    in the launchpad; there is no environment variable for it."""

    memory_limit: str = "2GB"
    threads: int = 2
    # Retired (TELEMETRY_DUCKDB_TEMP_DIRECTORY): set, it fails the run saying what replaced it.
    temp_directory: str | None = None
    max_line_bytes: int = 1 << 20
    accept_missing_landing: list[str] = Field(
        default_factory=list,
        description="Landing dates (YYYY-MM-DD) whose missing files this run may re-publish its "
        "days without: their rows leave the lake. For one run; leave empty otherwise.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Checked here too, not only in the run's preflight (defs/executor.py): the launchpad may
        # set them, and DuckDB would otherwise refuse them only when a step first connects.
        settings.duckdb_memory_limit(self.memory_limit)
        settings.duckdb_threads(self.threads)
        settings.retired_temp_directory(self.temp_directory)
        settings.accepted_missing_landing(self.accept_missing_landing)

    def ingest_settings(self) -> IngestSettings:
        return IngestSettings(
            max_line_bytes=self.max_line_bytes,
            memory_limit=self.memory_limit,
            threads=self.threads,
            accept_missing_landing=settings.accepted_missing_landing(self.accept_missing_landing),
        )


_DEFAULTS = Thresholds()


class ContractsResource(dg.ConfigurableResource):
    """The contracts' one config section: the gate thresholds every family's rate is held to and
    the clock-skew tolerance of the time-order rule. Checked when a run starts."""

    error_below: float = _DEFAULTS.error_below
    warn_below: float = _DEFAULTS.warn_below
    clock_skew_ms: int = _DEFAULTS.clock_skew_ms

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.thresholds()

    def thresholds(self) -> Thresholds:
        return Thresholds(self.error_below, self.warn_below, self.clock_skew_ms).validate()


class RollupsResource(dg.ConfigurableResource):
    """How experiments are evaluated: the control bucket's name, and each experiment's configured
    split (experiment_id -> bucket -> share of users); an experiment not listed is expected to
    split equally."""

    control_bucket: str = "control"
    splits: dict[str, dict[str, float]] = Field(default_factory=dict)

    def settings(self, duckdb: DuckDBResource) -> RollupSettings:
        return RollupSettings(
            self.control_bucket,
            self.splits,
            duckdb.memory_limit,
            duckdb.threads,
        )


class SloResource(dg.ConfigurableResource):
    """The SLO file: ``slo.yaml`` at the project root, or ``path`` (TELEMETRY_SLO_FILE). Read and
    validated when a step that uses it starts."""

    path: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.config()

    def config(self) -> SloConfig:
        return load_slo_config(Path(self.path) if self.path else None)


def lake_on_s3() -> bool:
    """Whether TELEMETRY_LAKE_ROOT points at S3 (read when definitions load, for asset kinds)."""
    return os.environ.get("TELEMETRY_LAKE_ROOT", "").startswith("s3://")


def env_var(name: str) -> dg.EnvVar | None:
    """The variable as an ``EnvVar`` when it is set (read when definitions load), else the
    resource's own default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _duckdb_bounds() -> dict[str, dg.EnvVar]:
    """The per-run memory bound and threads, where the environment sets them (a pod's size is
    deployment configuration, not code); the retired spill directory only to refuse it."""
    bounds = {
        "memory_limit": env_var("TELEMETRY_DUCKDB_MEMORY_LIMIT"),
        "temp_directory": env_var("TELEMETRY_DUCKDB_TEMP_DIRECTORY"),
    }
    if os.environ.get("TELEMETRY_DUCKDB_THREADS"):
        bounds["threads"] = dg.EnvVar.int("TELEMETRY_DUCKDB_THREADS")
    return {name: value for name, value in bounds.items() if value is not None}


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "lake": LakeResource(
                root=env_var("TELEMETRY_LAKE_ROOT"),
                s3_endpoint_url=env_var("TELEMETRY_S3_ENDPOINT_URL"),
                work_root=env_var("TELEMETRY_WORK_ROOT"),
                s3_connect_timeout_s=env_var("TELEMETRY_S3_CONNECT_TIMEOUT_S"),
                s3_read_timeout_s=env_var("TELEMETRY_S3_READ_TIMEOUT_S"),
                s3_retries=env_var("TELEMETRY_S3_RETRIES"),
                lease_wait_s=env_var("TELEMETRY_LEASE_WAIT_S"),
                lease_ttl_s=env_var("TELEMETRY_LEASE_TTL_S"),
            ),
            "pii": PiiResource(
                key=env_var("TELEMETRY_PII_KEY"),
                keys_json=env_var("TELEMETRY_PII_KEYS"),
                keys_file=env_var("TELEMETRY_PII_KEYS_FILE"),
                overlap_days=env_var("TELEMETRY_PII_OVERLAP_DAYS"),
                environment=env_var("TELEMETRY_ENV"),
                first_date=env_var("TELEMETRY_FIRST_DATE"),
            ),
            "duckdb": DuckDBResource(**_duckdb_bounds()),
            "contracts": ContractsResource(),
            "rollups": RollupsResource(),
            "slo": SloResource(path=env_var("TELEMETRY_SLO_FILE")),
        }
    )
