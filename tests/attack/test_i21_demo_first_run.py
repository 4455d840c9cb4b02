"""Issue 21 attack ("a first run that looks right"): ways the demo's first and second runs go wrong.

Each test is a reproduction that FAILS against the tree as built (commit 3862d06) and should pass
once the finding is fixed. None runs Dagster: they drive ``pipelines.demo``'s own helpers and the
sample generator in a tmp folder.

1. Ctrl-C (or SIGTERM, a closed terminal) while the demo writes its sample leaves landing files
   and no manifest (``generate`` deletes the old manifest first and writes the new one last).
   Every later ``python -m pipelines.demo`` then refuses the demo's own lake: "holds landing
   files the demo did not write ... Point TELEMETRY_LAKE_ROOT at an empty folder, or unset it
   for data/lake" -- which, for a newcomer, *is* data/lake. Only deleting the lake by hand helps.
2. A second run's "already up to date" trusts Dagster's records only: a deleted catalog file (or
   a changed TELEMETRY_CATALOG) is reported up to date and its path printed although it does not
   exist. (Same for a deleted report.html or events partition: see the report.)
3. ``--days`` has no upper bound (``--days 400``: 2.5 GB of landing files, hours of runs).
4. The "not the demo's lake" guard looks at landing/dt=*/* only: a real lake whose landing zone
   retention emptied is written into; the next demo of other dates then deletes the WHOLE root
   (``_afresh`` removes every entry under it), real events, ledger and rollups included.
   End to end: a root with events/ and ledger/ only, ``--start 2025-06-02 --days 1`` then
   ``--start 2025-06-03 --days 1``: the real files are gone.
(With TELEMETRY_LAKE_ROOT elsewhere the demo still writes the project's data/lake.duckdb:
covered in the report, not here: it needs a full demo run.)
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, datetime

import pytest

from pipelines import demo
from pipelines.lib.lake.errors import ConfigError
from pipelines.lib.sample.config import MANIFEST_NAME, SampleConfig
from pipelines.lib.sample.generator import generate


class _Interrupted(BaseException):
    """Stands for the KeyboardInterrupt of a Ctrl-C (not raised as one: pytest would stop)."""


def _interrupted_sample(root: str) -> None:
    calls = {"n": 0}

    def progress(_n: int) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:  # some days' files are written by now
            raise _Interrupted

    with pytest.raises(_Interrupted):
        generate(SampleConfig(start=date(2025, 6, 2), days=7), root, on_progress=progress)


def test_ctrl_c_while_writing_the_sample_does_not_lock_the_demo_out_of_its_own_lake(tmp_path):
    root = str(tmp_path / "lake")
    os.makedirs(root)
    _interrupted_sample(root)
    landing = tmp_path / "lake" / "landing"
    assert list(landing.glob("dt=*/*")), "precondition: the interrupted sample left files"
    assert not (landing / MANIFEST_NAME).exists(), "precondition: and no manifest"
    # Expected: the demo recognises its own half-written sample (or writes the manifest first /
    # a marker) and starts again. Actual: refused for ever as a foreign landing zone.
    assert demo._foreign_landing(root) is None, demo._foreign_landing(root)


def test_a_deleted_catalog_is_not_reported_up_to_date(tmp_path, monkeypatch):
    """The catalog step counts as built when Dagster holds a materialisation of ``catalog``; the
    file it wrote is not looked at. Reproduced against demo_runs.built with a stub instance."""
    from pipelines import demo_runs
    from pipelines.lib.setup import demo_plan

    class Instance:
        def get_latest_materialization_event(self, key):
            return object()  # Dagster remembers a catalog materialisation

    missing = tmp_path / "cat" / "lake.duckdb"
    monkeypatch.setenv("TELEMETRY_CATALOG", str(missing))
    monkeypatch.setattr(
        "pipelines.lib.automation.landing_watch.list_landing", lambda lake: {}, raising=True
    )
    step = demo_plan.Step(demo_plan.CATALOG, None)
    done = demo_runs.built(Instance(), [step], lake=None, now=datetime.now())
    assert not missing.exists()
    # Expected: a catalog file that is not there is not "up to date". Actual: it is skipped and
    # the demo then prints "Catalog for analysts: <missing path>".
    assert step.id not in done


def test_days_has_an_upper_bound():
    """``--days 400`` (no --start) is accepted: it writes 2.5 GB of landing files in 2 minutes
    and would run ~2 000 jobs (hours) for a demo documented as under a minute, with no warning
    and no total in the sample's progress line. Expected: refused, or capped with a word."""

    args = demo._parser().parse_args(["--days", "400"])
    try:
        days = demo._window(args, date(2025, 1, 1), date(2026, 12, 7))
    except ConfigError:
        return
    assert len(days) <= 62, f"--days 400 accepted: {len(days)} days"


def _real_lake(root) -> None:
    """A lake the demo did not build: a day of events, its ledger and a monthly rollup, and no
    landing files (retention removes landing/dt=X 7 days after the last partition reading it was
    materialised, so any lake idle for a week, or restored without landing/, looks like this)."""
    for rel in (
        "events/event_type=click/event_date=2025-03-04/part-00000.parquet",
        "ledger/event_date=2025-03-04/part-00000.parquet",
        "rollups/traffic_monthly/month_start=2025-03-01/part-00000.parquet",
    ):
        path = root / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(b"PAR1 real data PAR1")


def test_a_lake_with_data_but_no_landing_files_is_not_taken_for_the_demos(tmp_path):
    """The guard looks at landing/dt=*/* only: a real lake whose landing zone retention emptied
    is taken as free, the demo writes its sample (and its fake days) into it and leaves its
    manifest there -- after which the next demo of other dates deletes the whole root
    (next test)."""
    root = tmp_path / "lake"
    _real_lake(root)
    assert demo._foreign_landing(str(root)) is not None


def test_starting_the_demo_lake_again_deletes_only_what_the_demo_wrote(tmp_path):
    """``_afresh`` removes every entry under the lake root once a manifest of other dates is
    there, whatever wrote it: here the real lake of the test above, after one demo run."""
    root = tmp_path / "lake"
    _real_lake(root)
    (root / "landing").mkdir()
    (root / "landing" / MANIFEST_NAME).write_text('{"config": {"start": "2025-06-02"}}')

    class Defs:
        def resolve_asset_graph(self):
            class G:
                def get_all_asset_keys(self):
                    return []

            return G()

    class Instance:
        def wipe_assets(self, keys):
            pass

    # Refusing (the root is not marked as the demo's) keeps them as well as deleting only the
    # demo's files would.
    with contextlib.suppress(ConfigError):
        demo._afresh(str(root), "2025-06-02..2025-06-08", Defs(), Instance())
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert "events/event_type=click/event_date=2025-03-04/part-00000.parquet" in left, left
