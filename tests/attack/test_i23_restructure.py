"""Attacks on the issue-23 restructure: configuration read in pipelines/defs/resources.py."""

from __future__ import annotations

from pipelines.defs import resources
from pipelines.lib.lake import settings


def test_i23_lake_on_s3_agrees_with_lake_root_about_a_padded_value(monkeypatch):
    monkeypatch.setenv("TELEMETRY_LAKE_ROOT", " s3://bucket/lake")
    assert settings.lake_root(" s3://bucket/lake", "data/lake").startswith("s3://")
    assert resources.lake_on_s3()
