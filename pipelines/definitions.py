"""The code location: everything under ``pipelines/defs/``."""

from pathlib import Path

import dagster as dg

from pipelines.lib.lake.settings import exit_on_config_error

with exit_on_config_error():
    defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
