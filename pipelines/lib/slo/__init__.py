"""Service-level checks on the lake's metrics: adaptive thresholds (no Dagster import)."""
