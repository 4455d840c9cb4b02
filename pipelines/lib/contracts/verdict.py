"""Turn a family's rate into a verdict against the configured thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.lib.lake.errors import ConfigError

PASS = "pass"
WARN = "warn"
ERROR = "error"


@dataclass(frozen=True)
class Thresholds:
    """The contracts' one config section (``ContractsResource`` carries it into runs)."""

    error_below: float = 0.99  # a family's rate under this fails the day: rollups do not build
    warn_below: float = 0.999  # under this (and not under error_below): a warning
    clock_skew_ms: int = 5000  # how far an event may precede its partner in time_order

    def validate(self) -> Thresholds:
        if not 0.0 <= self.error_below <= self.warn_below <= 1.0:
            raise ConfigError(
                "contract thresholds must satisfy 0 <= error_below <= warn_below <= 1; got "
                f"error_below={self.error_below}, warn_below={self.warn_below}: set them on the "
                "`contracts` resource"
            )
        if self.clock_skew_ms < 0:
            raise ConfigError(
                f"clock_skew_ms must be >= 0, got {self.clock_skew_ms}: set it on the "
                "`contracts` resource"
            )
        return self


def verdict(rate: float, thresholds: Thresholds) -> str:
    if rate < thresholds.error_below:
        return ERROR
    if rate < thresholds.warn_below:
        return WARN
    return PASS
