"""Run one benchmark step in this fresh process and print its result as JSON on stdout.

    python -m bench.child STEP 'JOB-JSON'

The result adds this process's peak RSS (``VmHWM``, KiB). Not ``ru_maxrss``: Linux carries the
parent's high-water mark into a child across fork and exec. Logs go to stderr.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from bench.steps import STEPS_BY_NAME, Job


def main(argv: list[str]) -> int:
    step_name, job_json = argv
    measured = STEPS_BY_NAME[step_name].function()(Job.from_json(job_json))
    status = Path("/proc/self/status").read_text()
    peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    print(json.dumps({**asdict(measured), "peak_rss_kib": peak_kib}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
