"""Memory is bounded by configuration, whatever a landing file holds.

Each hostile input is built in tmp_path (streaming: a 2.3 GB line is never in this process's
memory), then ingested in a child process with DuckDB's memory limit set. The child's peak RSS is
the kernel's own figure for it (``VmHWM`` of /proc/self/status, read as it ends) and must stay
within the limit plus 1 GB; the ledger, read back here, must account for every line the input was
built with. ``os.wait4``'s ``ru_maxrss`` is not used: Linux carries the parent's high-water mark
into a child across fork and exec, so a child of a 1.5 GB test worker reported 1.5 GB whatever it
did.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.lake.storage import Lake
from tests.conftest import DAY

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT_MB = 512
HEADROOM_MB = 1024
# Linear work on these inputs takes seconds; the unbounded reader took minutes.
MAX_SECONDS = 60

CHILD = """
import re
import sys
from datetime import date
from pathlib import Path
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.lake.storage import Lake

ingest_partition(
    Lake(sys.argv[1]),
    date.fromisoformat(sys.argv[2]),
    PiiKey(pii.DEV_KEY),
    IngestSettings(memory_limit=sys.argv[3]),
)
status = Path("/proc/self/status").read_text()
Path(sys.argv[4]).write_text(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


def _landing(root: Path) -> Path:
    folder = root / "landing" / f"dt={DAY}"
    folder.mkdir(parents=True)
    return folder


def _gzip_of_repeats(path: Path, head: bytes, chunk: bytes, times: int, tail: bytes = b"") -> None:
    """``head + chunk * times + tail`` gzipped, compressed block by block (never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as out:
        out.write(packer.compress(head))
        for _ in range(times):
            out.write(packer.compress(chunk))
        out.write(packer.compress(tail))
        out.write(packer.flush())


def _ingest_measured(root: Path, tmp_path: Path) -> tuple[int, float]:
    """Ingest ``DAY`` in a child process; its peak RSS in MB and its wall time in seconds."""
    log = tmp_path / "child.log"
    peak_file = tmp_path / "child.peak_kib"
    started = time.perf_counter()
    with open(log, "wb") as sink:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(root),
                DAY.isoformat(),
                f"{MEMORY_LIMIT_MB}MB",
                str(peak_file),
            ],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        child.wait()
    seconds = time.perf_counter() - started
    assert child.returncode == 0, log.read_text(errors="replace")[-3000:]
    return int(peak_file.read_text()) // 1024, seconds


def _ledger_row(root: Path) -> dict:
    [row] = pq.read_table(root / f"ledger/event_date={DAY}/part-00000.parquet").to_pylist()
    assert audit_ledger(Lake(str(root)), DAY).passed
    return row


def _within_bounds(peak_mb: int, seconds: float) -> None:
    print(f"peak RSS {peak_mb} MB, {seconds:.1f} s")
    assert peak_mb <= MEMORY_LIMIT_MB + HEADROOM_MB
    assert seconds < MAX_SECONDS


def _ingest_all_counted(root: Path, tmp_path: Path, counter: str, lines: int) -> dict:
    """Ingest within the memory and time bounds; the ledger row (returned) balances and counts
    all ``lines`` of the file as read, taken and under ``counter``."""
    peak, seconds = _ingest_measured(root, tmp_path)

    _within_bounds(peak, seconds)
    row = _ledger_row(root)
    assert (row["file_lines"], row["lines_taken"], row[counter]) == (lines, lines, lines)
    return row


def test_a_gzip_bomb_of_one_endless_line_is_quarantined_in_bounded_memory(tmp_path):
    """2.2 MB of gzip inflating to 2.3 GB with no newline: one line, line_too_large."""
    root = tmp_path / "lake"
    head = b'{"event_type":"click","user_id":"'
    chunk, times = b"a" * (8 << 20), 275  # 2.3 GB
    path = _landing(root) / "bomb.jsonl.gz"
    _gzip_of_repeats(path, head, chunk, times)
    assert path.stat().st_size < 3 << 20

    _ingest_all_counted(root, tmp_path, "quarantined_line_too_large", 1)
    [quarantined] = pq.read_table(root / f"quarantine/event_date={DAY}").to_pylist()
    assert quarantined["line_bytes"] == len(head) + len(chunk) * times
    assert quarantined["text_truncated"] is True


@pytest.mark.parametrize(
    ("lines", "compressed"),
    [(64_000_000, True), (4_000_000, False)],
    ids=["gzip-64M-blank-lines", "plain-4MB-blank-lines"],
)
def test_millions_of_blank_lines_are_counted_in_bounded_memory(tmp_path, lines, compressed):
    root = tmp_path / "lake"
    folder = _landing(root)
    if compressed:
        path = folder / "blanks.jsonl.gz"
        _gzip_of_repeats(path, b"", b"\n" * (1 << 20), lines >> 20, b"\n" * (lines % (1 << 20)))
        assert path.stat().st_size < 128 << 10
    else:
        (folder / "blanks.jsonl").write_bytes(b"\n" * lines)

    row = _ingest_all_counted(root, tmp_path, "blank_lines", lines)
    assert row["quarantined"] == row["rows_written"] == 0


def test_millions_of_malformed_lines_are_quarantined_in_bounded_memory(tmp_path):
    """Every one is a quarantine row; redaction goes batch by batch, each distinct text once."""
    root = tmp_path / "lake"
    lines = 2_000_000
    (_landing(root) / "bad.jsonl").write_bytes(b"not json\n" * lines)

    _ingest_all_counted(root, tmp_path, "quarantined_malformed_json", lines)
    quarantine = pq.read_table(root / f"quarantine/event_date={DAY}", columns=["line_no", "text"])
    assert quarantine.num_rows == lines
    assert quarantine["text"].unique().to_pylist() == ["not json"]


def test_many_lines_over_the_limit_stage_only_their_heads(tmp_path):
    """Lines over max_line_bytes but within a batch: each keeps a 64 KiB head for the quarantine,
    so DuckDB never holds them whole (it cannot spill strings that large)."""
    root = tmp_path / "lake"
    lines, body = 400, b'{"event_type":"click","x":"' + b"a" * (2 << 20) + b'"}\n'
    _gzip_of_repeats(_landing(root) / "long.jsonl.gz", b"", body, lines)

    _ingest_all_counted(root, tmp_path, "quarantined_line_too_large", lines)
    quarantine = pq.read_table(root / f"quarantine/event_date={DAY}").to_pylist()
    assert {(q["line_bytes"], q["text_truncated"]) for q in quarantine} == {(len(body) - 1, True)}
