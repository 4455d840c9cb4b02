"""Every resource of the code location, in one place: where the lake is, the PII keys, how much
DuckDB may use, and each stage's config section (contracts, rollups, SLOs, catalog, compaction,
retention, privacy, alerts, reports). Read from the environment when definitions load
(``EnvVar``), validated when a run starts. The asset, job and sensor modules only use them, so
none imports another for its resource."""

import logging
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.lib.automation.alerts import (
    DAGSTER_URL_VARIABLE,
    DEFAULT_RETRY_PAUSE_S,
    DEFAULT_TIMEOUT_S,
    WEBHOOK_URL_VARIABLE,
    Alert,
    parse_dagster_url,
    parse_webhook_url,
    run_url,
    send_all,
)
from pipelines.lib.catalog import tiers as access_tiers
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest import keyring_config
from pipelines.lib.ingest.keyring import Keyring
from pipelines.lib.ingest.partition import IngestSettings
from pipelines.lib.lake import lake_root, paths, settings
from pipelines.lib.lake.lease import Lease, Owner
from pipelines.lib.lake.paths import default_lake_root
from pipelines.lib.lake.storage import Lake, S3Timeouts
from pipelines.lib.maintenance.compact import (
    DEFAULT_MAX_FILES,
    DEFAULT_TARGET_FILE_BYTES,
    CompactionSettings,
)
from pipelines.lib.maintenance.retention import Windows
from pipelines.lib.rollups.run import RollupSettings
from pipelines.lib.slo.config import SloConfig, load_slo_config


class LakeResource(dg.ConfigurableResource):
    """The lake's root: a local folder (default ``data/lake``; a relative path is a folder of
    the project, whatever the working directory) or ``s3://bucket/prefix``, which must exist
    (lib/lake/lake_root.py: only the demo and the sample generator create a lake); and its work root
    (``TELEMETRY_WORK_ROOT``), under which each run's DuckDB spills and S3 uploads are staged in
    a private folder (default ``{root}/_work/tmp`` for a local lake, the system temp dir's
    ``telemetry-lake/`` for S3). On S3 every request is bounded: connect and read
    timeouts and retries (``TELEMETRY_S3_*``, lib/lake/s3.py). Partition writers take a lease in the
    lake (lib/lake/lease.py), waiting ``lease_wait_s`` for another holder before refusing."""

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
        return keyring_config.pii_keyring(
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

    def all_secrets(self) -> list[bytes]:
        """Every key's secret, old and new: a user's rows carry the hash of whichever key was
        active when they were written, so erasure and export hash the raw id under all of them."""
        return [key.secret for key in self.keyring().all_keys()]


class DuckDBSettings(dg.ConfigurableResource):
    """Settings, not a connection: each step opens its own DuckDB (dagster-duckdb's
    ``DuckDBResource``, a shared connection, is another thing). Resource key ``duckdb``.

    Bounds for each run's in-memory DuckDB: memory is capped, and beyond it DuckDB spills to
    a private folder of the run under the lake's work root (``LakeResource.work_root``). With
    them, ingest's settings: ``accept_missing_landing`` lists landing dates whose files, listed
    by a day's ledger but gone (not retired), a re-ingest may publish without, losing their rows;
    ingest refuses otherwise (lib/ingest/wipe_guard.py, docs/operations.md). Set it for one run
    only,
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


_THRESHOLDS = Thresholds()


class ContractsResource(dg.ConfigurableResource):
    """The contracts' one config section: the gate thresholds every family's rate is held to and
    the clock-skew tolerance of the time-order rule. Checked when a run starts."""

    error_below: float = _THRESHOLDS.error_below
    warn_below: float = _THRESHOLDS.warn_below
    clock_skew_ms: int = _THRESHOLDS.clock_skew_ms

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

    def settings(self, duckdb: DuckDBSettings) -> RollupSettings:
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


class CatalogResource(dg.ConfigurableResource):
    """Where the catalogs are written and which tiers: ``path`` is the engineer's file (default
    ``data/lake.duckdb``, a local file also when the lake is on S3), the other tiers' files sit
    beside it. ``tiers`` is a comma-separated subset of engineer, analyst, viewer (default all);
    ``viewer_min_users`` is k: the viewer tier and the partner bundles withhold every rollup row
    covering fewer users."""

    path: str | None = None
    tiers: str | None = None
    viewer_min_users: int = access_tiers.DEFAULT_VIEWER_MIN_USERS

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail the run before anything is written, naming the variable to set.
        self.tier_names()
        self.min_users()

    def catalog_path(self) -> str:
        return paths.catalog_path(self.path)

    def tier_names(self) -> tuple[str, ...]:
        return access_tiers.parse_tiers(self.tiers, source="TELEMETRY_CATALOG_TIERS")

    def min_users(self) -> int:
        return access_tiers.check_min_users(
            self.viewer_min_users, source="TELEMETRY_VIEWER_MIN_USERS"
        )

    def tier_path(self, tier: str) -> str:
        return access_tiers.tier_path(self.catalog_path(), tier)


class CompactionResource(dg.ConfigurableResource):
    """Compaction's config section: the size of the files a partition is rewritten into (128 MiB
    .. 1 GiB) and how many files a partition may have before the sensor compacts it (a file above
    twice the target also triggers it). Checked when a run starts."""

    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    max_files: int = DEFAULT_MAX_FILES

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        CompactionSettings(self.target_file_bytes, self.max_files).validate()

    def settings(self, duckdb: DuckDBSettings) -> CompactionSettings:
        return CompactionSettings(
            target_file_bytes=self.target_file_bytes,
            max_files=self.max_files,
            memory_limit=duckdb.memory_limit,
            threads=duckdb.threads,
        ).validate()


_WINDOWS = Windows()


class RetentionResource(dg.ConfigurableResource):
    """The retention windows, in days: the one config section. A window shorter than the
    late-arrival window (2 days) fails the run before anything is listed or deleted."""

    events_days: int = Field(_WINDOWS.events_days, description="events/, except errors")
    errors_days: int = Field(
        _WINDOWS.errors_days, description="error events; then only critical ones are kept"
    )
    critical_errors_days: int = Field(
        _WINDOWS.critical_errors_days, description="error events with severity = 'critical'"
    )
    quarantine_days: int = Field(_WINDOWS.quarantine_days, description="quarantine/")
    contracts_days: int = Field(_WINDOWS.contracts_days, description="contracts/ (violations)")
    quality_days: int = Field(_WINDOWS.quality_days, description="quality/ (contract rates)")
    ledger_days: int = Field(_WINDOWS.ledger_days, description="ledger/")
    rollups_days: int = Field(
        _WINDOWS.rollups_days, description="rollups/, from the last day of the period"
    )
    landing_days_after_materialised: int = Field(
        _WINDOWS.landing_days_after_materialised,
        description="landing/dt=X, after the last partition reading X was materialised",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.windows()

    def windows(self) -> Windows:
        return Windows(
            events_days=self.events_days,
            errors_days=self.errors_days,
            critical_errors_days=self.critical_errors_days,
            quarantine_days=self.quarantine_days,
            contracts_days=self.contracts_days,
            quality_days=self.quality_days,
            ledger_days=self.ledger_days,
            rollups_days=self.rollups_days,
            landing_days_after_materialised=self.landing_days_after_materialised,
        ).validate()


class PrivacyResource(dg.ConfigurableResource):
    """What an erasure keeps. By default the request file (the only place the raw ids are, with
    landing/) is replaced by a redacted copy in ``requests/erasure/processed/``: set
    ``keep_request_files`` to keep it as it came (e.g. under a legal hold). By default landing/
    keeps its raw lines until retention deletes them (the audit says when): set
    ``rewrite_landing`` to remove the users' lines from landing files at once (the landing sensor
    then re-runs the days that read them)."""

    keep_request_files: bool = False
    rewrite_landing: bool = False


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: the webhook (TELEMETRY_ALERT_WEBHOOK_URL; unset: alerts off) and the
    Dagster UI that run links point at (TELEMETRY_DAGSTER_URL, default http://127.0.0.1:3000).
    Checked when a sensor tick starts."""

    webhook_url: str | None = None
    dagster_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry_pause_s: float = DEFAULT_RETRY_PAUSE_S

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.webhook()
        parse_dagster_url(self.dagster_url)

    def webhook(self) -> str | None:
        return parse_webhook_url(self.webhook_url)

    def run_url(self, run_id: str) -> str:
        return run_url(parse_dagster_url(self.dagster_url), run_id)

    def send(self, alerts: list[Alert], log: logging.Logger) -> None:
        send_all(self.webhook(), alerts, log.info, log.error, self.timeout_s, self.retry_pause_s)


class ReportsResource(dg.ConfigurableResource):
    """Where a report's run links point: the Dagster UI's base address (TELEMETRY_DAGSTER_URL,
    as for alerts). Unset, reports carry no run links: a guessed address would be a broken link
    for every reader on another machine. Checked when a report step starts."""

    dagster_url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.base_url()

    def base_url(self) -> str | None:
        if self.dagster_url is None or not self.dagster_url.strip():
            return None
        return parse_dagster_url(self.dagster_url)


# What must be known before any resource exists (partitions, the executor, asset kinds) is read
# from the environment here too, by these functions, each time they are called (a test or the
# doctor may change the environment between two loads).


def lake_on_s3() -> bool:
    """Whether TELEMETRY_LAKE_ROOT points at S3 (read when definitions load, for asset kinds)."""
    # Stripped as settings.lake_root strips it, so both read the same value the same way.
    return os.environ.get("TELEMETRY_LAKE_ROOT", "").strip().startswith("s3://")


def first_partition() -> date:
    """The first partition date (TELEMETRY_FIRST_DATE, default 2025-01-01): the partitions' start
    when definitions load; the landing sensor and retention read it when they run."""
    return settings.first_partition_date(os.environ.get("TELEMETRY_FIRST_DATE"))


def executor_name() -> str:
    """TELEMETRY_EXECUTOR: multiprocess (default), in_process or k8s."""
    return settings.executor(os.environ.get("TELEMETRY_EXECUTOR"))


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


def catalog_resource() -> CatalogResource:
    """The catalog resource from the environment (read when definitions load)."""
    k = os.environ.get("TELEMETRY_VIEWER_MIN_USERS")
    return CatalogResource(
        path=env_var("TELEMETRY_CATALOG"),
        tiers=env_var("TELEMETRY_CATALOG_TIERS"),
        viewer_min_users=dg.EnvVar.int("TELEMETRY_VIEWER_MIN_USERS")
        if k
        else access_tiers.DEFAULT_VIEWER_MIN_USERS,
    )


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
            "duckdb": DuckDBSettings(**_duckdb_bounds()),
            "contracts": ContractsResource(),
            "rollups": RollupsResource(),
            "slo": SloResource(path=env_var("TELEMETRY_SLO_FILE")),
            "catalog": catalog_resource(),
            "compaction": CompactionResource(),
            "retention": RetentionResource(),
            "privacy": PrivacyResource(),
            "alerts": AlertsResource(
                webhook_url=env_var(WEBHOOK_URL_VARIABLE),
                dagster_url=env_var(DAGSTER_URL_VARIABLE),
            ),
            "reports": ReportsResource(dagster_url=env_var(DAGSTER_URL_VARIABLE)),
        }
    )
