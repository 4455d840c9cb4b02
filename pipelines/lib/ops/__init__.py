"""Plain functions behind the operations jobs and sensors (no Dagster import)."""
