"""``make dev``: ``dg dev`` (the Dagster UI, its daemon and code server) that stops when asked.

    python -m pipelines.dev [dg dev options, e.g. -h 127.0.0.1 -p 3000]

``dg dev`` shuts its webserver and daemon down on Ctrl-C or SIGTERM, but leaves its code servers
(they exit only once their heartbeat times out, 45 s later) and any run they launched: a ``make
dev`` told to stop kept running for a minute or more. This wrapper starts ``dg dev`` at the head
of a process group of its own, passes Ctrl-C (SIGINT) or SIGTERM on to the whole group as
SIGINT, as a terminal's Ctrl-C would, waits for ``dg dev`` to finish its own shutdown (at most
``GRACE_S``), then ends what is left of the group: SIGTERM, and SIGKILL after ``KILL_AFTER_S``.
A run cut short that way is marked failed by the instance's run monitoring
(docs/operations.md, "Killed runs").

It first makes the checks of ``python -m pipelines.doctor`` (the S3 endpoint not probed): with
any error it prints the error lines, one per problem naming the variable to set, and exits 1
before Dagster starts, rather than a code server failing to load with a traceback.

Exit status: ``dg dev``'s own; 0 after a stop that was asked for (Ctrl-C, SIGTERM); 1 when the
configuration has errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pipelines.lib.setup import doctor_checks as doctor

# dg dev waits up to 60 s for each of its services; measured, it is done in about 6 s.
GRACE_S = 20.0
KILL_AFTER_S = 5.0
POLL_S = 0.2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    today = datetime.now(UTC).date()
    errors = [f for f in doctor.check(os.environ, today, probe_s3=False) if f.level == doctor.ERROR]
    for finding in errors:
        print(finding.line(), file=sys.stderr)
    if errors:
        return 1
    dg_cli = Path(sys.executable).parent / "dg"
    asked: list[int] = []
    started: list[int] = []  # the group, once dg dev is started

    def stop(signum: int, _frame: object) -> None:
        if not asked:
            asked.append(signum)
            if started:
                _signal_group(started[0], signal.SIGINT)

    # Before dg dev starts: a stop asked for while it starts still reaches it (below).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    child = subprocess.Popen([str(dg_cli), "dev", *args], start_new_session=True)
    group = child.pid
    started.append(group)
    if asked:
        _signal_group(group, signal.SIGINT)
    while child.poll() is None and not asked:
        time.sleep(POLL_S)
    if asked:
        _wait(child, GRACE_S)
    else:
        child.wait()  # dg dev ended by itself: still end what it left behind
    _end_group(group)
    if asked:
        return 0
    return child.returncode or 0


def _wait(child: subprocess.Popen, timeout_s: float) -> None:
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()


def _end_group(group: int) -> None:
    """SIGTERM to what is left of the group, SIGKILL to what is left after KILL_AFTER_S."""
    if not _members(group):
        return
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + KILL_AFTER_S
    while _members(group) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if _members(group):
        _signal_group(group, signal.SIGKILL)
        deadline = time.monotonic() + KILL_AFTER_S
        while _members(group) and time.monotonic() < deadline:
            time.sleep(POLL_S)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(group, signum)


def _members(group: int) -> list[int]:
    """The live processes of the group (zombies, which a signal cannot end, left out)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: the group exists or it does not
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        return [group]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


if __name__ == "__main__":
    sys.exit(main())
