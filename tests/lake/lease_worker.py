"""A separate process taking a partition lease, for tests/lake/test_lease.py.

``python -m tests.lake.lease_worker ROOT ENDPOINT MODE NAME TTL_S WAIT_S [LOG]``:

* ``hold``: take the lease, print ``held`` and sleep until killed;
* ``race``: take the lease, append ``NAME start <time>`` and ``NAME end <time>`` to LOG with a
  pause between, then release it (a refusal is appended as ``NAME refused``).
"""

from __future__ import annotations

import sys
import time

from pipelines.lib.lake.lease import Lease, LeaseHeldError, Owner
from pipelines.lib.lake.storage import Lake


def main() -> None:
    root, endpoint, mode, name, ttl_s, wait_s = sys.argv[1:7]
    options = {"client_kwargs": {"endpoint_url": endpoint}} if root.startswith("s3://") else {}
    lake = Lake(root, options)
    lease = Lease(
        lake, "ingest", "2025-06-02", Owner.current(run_id=name),
        ttl_s=float(ttl_s), wait_s=float(wait_s), poll_s=0.1,
    )  # fmt: skip
    if mode == "hold":
        lease.acquire()
        print("held", flush=True)
        time.sleep(3600)
        return
    log = sys.argv[7]
    try:
        with lease:
            with open(log, "a") as handle:
                handle.write(f"{name} start {time.time()}\n")
            time.sleep(0.3)
            with open(log, "a") as handle:
                handle.write(f"{name} end {time.time()}\n")
    except LeaseHeldError:
        with open(log, "a") as handle:
            handle.write(f"{name} refused\n")


if __name__ == "__main__":
    main()
