"""``make dev`` stops, everything it started included, on SIGTERM and on Ctrl-C.

Each case starts ``make dev`` (``pipelines/dev.py`` around ``dg dev``) on a throw-away instance
and an empty lake, waits until the UI answers, stops it as a supervisor (SIGTERM to make) or a
terminal (SIGINT to make's process group) would, and then looks for any process still carrying
that instance in its environment: the webserver, the daemon, the code servers and their runs all
inherit it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipelines import dev
from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import free_port, wait_until_serving

pytestmark = pytest.mark.ui

# dg dev's own shutdown, then what is left: SIGTERM, and SIGKILL KILL_AFTER_S later.
BOUND_S = dev.GRACE_S + 2 * dev.KILL_AFTER_S + 5


def _holding(home: Path) -> list[str]:
    """The processes whose environment names ``home`` as DAGSTER_HOME."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker in environ.split(b"\0") and stat[stat.rfind(")") + 2] != "Z":
            found.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:120]!r}")
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find leftovers")
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("how", ["sigterm_to_make", "ctrl_c"])
def test_make_dev_stops_and_leaves_nothing(tmp_path, how):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    lake = tmp_path / "lake"
    lake.mkdir()
    port = free_port()
    log = tmp_path / "dev.log"
    env = {**os.environ, "TELEMETRY_LAKE_ROOT": str(lake)}
    with open(log, "w") as out:
        make = subprocess.Popen(
            # On the command line: it overrides the Makefile's DAGSTER_HOME (the project root).
            ["make", "dev", f"DAGSTER_HOME={home}", f"DEV_PORT={port}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        try:
            wait_until_serving(
                f"http://127.0.0.1:{port}/server_info", make, lambda: log.read_text()[-3000:]
            )
            assert _holding(home), "nothing found to stop: the check below would prove nothing"
            asked = time.monotonic()
            if how == "sigterm_to_make":
                make.send_signal(signal.SIGTERM)
            else:
                os.killpg(make.pid, signal.SIGINT)
            make.wait(timeout=BOUND_S)
            took = time.monotonic() - asked
            left = _holding(home)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
            for line in _holding(home):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    assert took < BOUND_S
    assert left == [], f"still running {took:.1f} s after the stop: {left}"
