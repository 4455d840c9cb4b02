"""Resources: where the lake is, the PII key, and how much DuckDB may use. Read from the
environment when definitions load (``EnvVar``), validated when a run starts."""

import os

import dagster as dg
from pydantic import Field

from pipelines.lib import settings
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest import IngestSettings, PiiKey
from pipelines.lib.paths import default_lake_root
from pipelines.lib.rollups.run import RollupSettings
from pipelines.lib.storage import Lake


class LakeResource(dg.ConfigurableResource):
    """The lake's root: a local folder (default ``data/lake``) or ``s3://bucket/prefix``."""

    root: str | None = None
    s3_endpoint_url: str | None = None

    def lake(self) -> Lake:
        root = settings.lake_root(self.root, default_lake_root())
        options = {}
        if root.startswith("s3://") and self.s3_endpoint_url:
            options = {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return Lake(root, options)


class PiiResource(dg.ConfigurableResource):
    """The keyed-hashing secret. Without one, development runs use a public key (with a warning)
    and production runs fail before touching any data."""

    key: str | None = None
    environment: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        _, warning = settings.pii_secret(self.key, self.environment)
        if warning and context.log:
            context.log.warning(warning)

    def pii_key(self) -> PiiKey:
        secret, _ = settings.pii_secret(self.key, self.environment)
        return PiiKey(secret)


class DuckDBResource(dg.ConfigurableResource):
    """Bounds for each run's in-memory DuckDB: memory is capped and spills to ``temp_directory``."""

    memory_limit: str = "2GB"
    threads: int = 2
    temp_directory: str | None = None
    max_line_bytes: int = 1 << 20

    def ingest_settings(self) -> IngestSettings:
        return IngestSettings(
            max_line_bytes=self.max_line_bytes,
            memory_limit=self.memory_limit,
            threads=self.threads,
            temp_directory=self.temp_directory,
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
            duckdb.temp_directory,
        )


def lake_on_s3() -> bool:
    """Whether TELEMETRY_LAKE_ROOT points at S3 (read when definitions load, for asset kinds)."""
    return os.environ.get("TELEMETRY_LAKE_ROOT", "").startswith("s3://")


def env_var(name: str) -> dg.EnvVar | None:
    """The variable as an ``EnvVar`` when it is set (read when definitions load), else the
    resource's own default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "lake": LakeResource(
                root=env_var("TELEMETRY_LAKE_ROOT"),
                s3_endpoint_url=env_var("TELEMETRY_S3_ENDPOINT_URL"),
            ),
            "pii": PiiResource(
                key=env_var("TELEMETRY_PII_KEY"), environment=env_var("TELEMETRY_ENV")
            ),
            "duckdb": DuckDBResource(),
            "contracts": ContractsResource(),
            "rollups": RollupsResource(),
        }
    )
