"""Issue 21 attack: ``make dev`` (``python -m pipelines.dev``) told to stop right as it starts.

``dev.main`` starts ``dg dev`` in a session of its own (``start_new_session=True``) and only then
installs its SIGINT/SIGTERM handlers. A SIGTERM (systemd, ``timeout``, an IDE's stop button, a
test harness) or Ctrl-C that lands between the two kills ``pipelines.dev`` with Python's default
action, and ``dg dev`` -- webserver, daemon, code servers -- keeps running, detached, in its own
session: nothing will ever stop it (a terminal's Ctrl-C does not reach another session).

Reproduced deterministically: the Popen that starts ``dg dev`` is replaced by one that starts a
stand-in (``sleep``) the same way and delivers the signal to ``pipelines.dev`` the moment it
returns, i.e. inside the window. Expected: the stand-in is ended (handlers installed before the
child starts, or signals blocked around it). Actual: it outlives ``pipelines.dev``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, signal, subprocess, sys
from pipelines import dev

real = subprocess.Popen

def popen(cmd, **kw):
    kw.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = real(["sleep", "60"], **kw)
    open(sys.argv[1], "w").write(str(child.pid))
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))  # lands before dev installs its handlers
    return child

dev.subprocess.Popen = popen
sys.exit(dev.main(["-p", "1"]))
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_during_startup_leaves_no_dg_dev_behind(tmp_path, signame):
    lake = tmp_path / "lake"
    lake.mkdir()
    env = {
        **os.environ,
        "TELEMETRY_LAKE_ROOT": str(lake),
        "DAGSTER_HOME": str(tmp_path),
    }
    pid_file = tmp_path / "child.pid"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(pid_file), signame],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    child = int(pid_file.read_text())
    try:
        time.sleep(0.5)
        left = _alive(child)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
    assert not left, (
        f"pipelines.dev ended (rc {proc.returncode}) on {signame} during startup and left its "
        f"dg dev (pid {child}) running in its own session; stderr tail: {proc.stderr[-300:]!r}"
    )
