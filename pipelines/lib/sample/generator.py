"""Deterministic sample telemetry for the landing zone, with injected faults and exact expectations.

``generate(SampleConfig(...), root)`` writes ``{root}/landing/dt=YYYY-MM-DD/part-NNNNN.jsonl[.gz]``
(``dt`` is the ARRIVAL date) plus ``{root}/landing/sample_manifest.json``, which says exactly what
a correct ingest must produce from those files. Same config and seed => byte-identical files.

Volume: every request yields 1 request + 1 ranking + ``min(k, impressions_per_request)``
impressions (k is 10, 20 or 50, so 8 with the defaults) + ``ctr`` clicks per impression + an error
with probability ``error_rate``; with the defaults that is 10.41 valid events per request, and the
injected duplicate/quarantine copies add 1.65 % more lines: about **10.58 lines per request**
(``SampleConfig.lines_per_request()``). So ``requests_per_day=60_000`` is ~635k lines a day and a
1M-line day needs ~94.5k requests (``SampleConfig.for_lines_per_day(1_000_000)``, or the CLI's
``--lines-per-day``).

Arrival (all VALID, they belong to partition = event date):

* most lines land on ``dt`` = their event date, in event-time order, split over ``files_per_dt``
  files by time of day (part-00000 first); odd-numbered files are gzip-compressed (``mtime=0``);
* ``late_share`` of the events land on ``dt`` E+1 (70 %) or E+2 (30 %), at the start of part-00000;
* ``early_share`` of the requests happen in the first minute after midnight and their whole chain
  (< 2 minutes) lands on ``dt`` E-1, at the end of its last file (a client clock running ahead).

Faults (disjoint: one per affected line; every quarantine fault is an *extra* copy of a valid event
under a fresh ``event_id``, so the valid request chains stay intact and only ``orphan_click``
creates orphans):

* ``duplicate_rate``: a byte-identical copy written later (same file, or a later file/dt within
  E-1..E+2); ``conflicting_duplicate_rate``: same ``event_id``, one field changed (still valid);
* ``malformed_json_rate``: a copy truncated at a random point (never valid JSON);
* ``schema_violation_rate``: a copy with one violation (k=0, device_type "toaster", a missing
  required field, an unknown "usr_id" property, position 0, negative latency_ms, ...);
* ``unknown_event_type_rate`` ("pageview"), ``unknown_schema_version_rate`` ("9.9.9");
* ``late_arrival_rate``: a copy landing on ``dt`` E+3..E+5; ``future_timestamp_rate``: a copy whose
  timestamp is moved 2-3 days ahead of its landing ``dt``;
* ``orphan_click_rate`` (of clicks): a click whose ``request_id`` matches no request (valid row;
  counted per partition under the manifest's ``orphan_clicks``).

Manifest (the ownership rule the ingest applies): partition D reads ``dt`` D-1..D+2; a line from
``dt`` A with a readable event date E belongs to E when A-2 <= E <= A+1, else it is quarantined by
partition A as ``late_arrival`` (E < A-2) or ``future_timestamp`` (E > A+1); unparseable lines are
``malformed_json`` of partition A. Within a partition the first occurrence of an ``event_id`` in
(dt, file name, line number) order is the original; later byte-identical copies count as
``duplicates``, later different ones as quarantined ``conflicting_duplicate``. The manifest::

    {"config": {...SampleConfig.to_dict()...},
     "files": {"landing/dt=2025-06-02/part-00000.jsonl": {"lines": 1234}, ...},
     "partitions": {"2025-06-02": {"rows": {"request": n, "ranking": n, "impression": n,
                                            "click": n, "error": n},
                                   "duplicates": n,
                                   "quarantined": {"malformed_json": n, ...non-zero only}}, ...},
     "orphan_clicks": {"2025-06-02": n, ...}}

``partitions`` lists every date with any count (also landing dates that only quarantine lines);
``rows`` are the valid unique rows per type; ``files`` lists every file written.

Pure Python (no Dagster) so tests, the CLI (``python -m pipelines.sample``) and assets share it.
This module drives a generation and writes the files; ``config.py`` holds what shapes it,
``events.py`` the request chains, ``faults.py`` the planted faults and
``expectations.py`` the manifest's counts.
"""

from __future__ import annotations

import gc
import gzip
import random
import sys
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from operator import itemgetter
from typing import Any, TextIO

import fsspec
import orjson
from tqdm import tqdm

from pipelines.lib.lake.paths import landing_dir
from pipelines.lib.sample.config import (
    DAY_MS,
    MANIFEST_NAME,
    WRITING_NAME,
    SampleConfig,
    day_date,
    day_number,
)
from pipelines.lib.sample.events import RequestChains
from pipelines.lib.sample.expectations import Expectations
from pipelines.lib.sample.faults import FaultInjector

_NL = orjson.OPT_APPEND_NEWLINE
_ITEMGETTER0 = itemgetter(0)
_ITEMGETTER1 = itemgetter(1)
_EARLY_WINDOW_MS = 60_000  # early requests start in the first minute; their chains end < 2 min
_FLUSH_BYTES = 8 << 20


class _DtWriter:
    """The files of one landing dt; parts are opened lazily, so empty parts are never created."""

    def __init__(self, run: _Run, dt: int) -> None:
        self.run = run
        self.dt = dt
        n = run.cfg.files_per_dt
        rel_dir = landing_dir(day_date(dt))
        self.rel = [f"{rel_dir}/part-{i:05d}.jsonl" + (".gz" if i % 2 else "") for i in range(n)]
        self.raw: list[Any] = [None] * n
        self.out: list[Any] = [None] * n
        self.pending: list[list[bytes]] = [[] for _ in range(n)]
        self.pending_bytes = [0] * n
        self.lines = [0] * n

    def write(self, i: int, entries: list[tuple[int, bytes]]) -> None:
        if not entries:
            return
        blob = b"".join(map(_ITEMGETTER1, entries))
        self.lines[i] += len(entries)
        self.pending[i].append(blob)
        self.pending_bytes[i] += len(blob)
        if self.pending_bytes[i] >= _FLUSH_BYTES:
            self._flush(i)

    def write_by_time(self, entries: list[tuple[int, bytes]]) -> None:
        """Sorted entries of this dt's own day: part i holds the i-th slice of the day."""
        n = len(self.rel)
        base = self.dt * DAY_MS
        lo = 0
        for i in range(n):
            if i == n - 1:
                hi = len(entries)
            else:
                bound = base + (i + 1) * DAY_MS // n
                hi = bisect_left(entries, bound, lo, key=_ITEMGETTER0)
            self.write(i, entries[lo:hi])
            lo = hi

    def write_spread(self, entries: list[tuple[int, bytes]]) -> None:
        """Sorted entries of a dt without a day of its own, cut into contiguous equal parts."""
        n = min(len(self.rel), len(entries))
        for i in range(n):
            self.write(i, entries[i * len(entries) // n : (i + 1) * len(entries) // n])

    def _flush(self, i: int) -> None:
        if not self.pending[i]:
            return
        if self.out[i] is None:
            fs, path = self.run.fs, f"{self.run.base}/{self.rel[i]}"
            if self.run.local:
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            raw = fs.open(path, "wb")
            self.raw[i] = raw
            self.out[i] = raw
            if i % 2:
                level = self.run.cfg.gzip_level
                self.out[i] = gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level
                )
        self.out[i].write(b"".join(self.pending[i]))
        self.pending[i] = []
        self.pending_bytes[i] = 0

    def close(self) -> None:
        for i in range(len(self.rel)):
            self._flush(i)
            if self.out[i] is not None:
                if self.out[i] is not self.raw[i]:
                    self.out[i].close()
                self.raw[i].close()
                self.run.files[self.rel[i]] = self.lines[i]


class _Run:
    """One generation: the chains of every day, written to their landing dts in order."""

    def __init__(
        self,
        cfg: SampleConfig,
        fs: Any,
        base: str,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.cfg = cfg
        self.fs = fs
        self.base = base
        self.local = "file" in fs.protocol or "local" in fs.protocol
        self.on_progress = on_progress
        self.rng = random.Random(cfg.seed)
        self.files: dict[str, int] = {}
        self.expected = Expectations()
        # Lines bound for a landing dt other than the one being written, by dt.
        self.buffers: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        faults = FaultInjector(cfg, self.rng, self.expected, self.buffers)
        self.chains = RequestChains(cfg, self.rng, self.expected, faults)

    def early_block(self, day: int) -> tuple[int, list[tuple[int, bytes]]]:
        """The early requests of ``day``: their count and the sorted lines landing on dt day-1."""
        cfg = self.cfg
        expected = cfg.requests_per_day * cfg.early_share
        n = min(cfg.requests_per_day, int(expected + self.rng.random()))
        out: list[tuple[int, bytes]] = []
        done = self.chains.emit(
            day, self.chains.request_times(n, _EARLY_WINDOW_MS), day - 1, out, 1 << 62
        )
        self.progress(done)
        out.sort(key=_ITEMGETTER0)
        return n, out

    def progress(self, n: int) -> None:
        if self.on_progress is not None and n:
            self.on_progress(n)

    def write_spill(self, dt: int) -> None:
        entries = self.buffers.pop(dt, [])
        if entries:
            entries.sort(key=_ITEMGETTER0)
            writer = _DtWriter(self, dt)
            writer.write_spread(entries)
            writer.close()

    def main_day(self, day: int, n_early: int, writer: _DtWriter, chunk: int = 256) -> None:
        tods = self.chains.request_times(self.cfg.requests_per_day - n_early, None)
        cap = (day + 1) * DAY_MS - 1
        pending: list[tuple[int, bytes]] = []
        for lo in range(0, len(tods), chunk):
            done = self.chains.emit(day, tods[lo : lo + chunk], day, pending, cap)
            pending.sort(key=_ITEMGETTER0)
            if lo + chunk < len(tods):
                # Everything generated later has a sort key >= the next request's time.
                cut = bisect_left(pending, day * DAY_MS + tods[lo + chunk], key=_ITEMGETTER0)
                ready, pending = pending[:cut], pending[cut:]
            else:
                ready, pending = pending, []
            writer.write_by_time(ready)
            self.progress(done)
        writer.write_by_time(pending)

    def run(self) -> None:
        first = day_number(self.cfg.start)
        last = first + self.cfg.days - 1
        n_early, block = self.early_block(first)
        self.buffers[first - 1].extend(block)
        self.write_spill(first - 1)
        for day in range(first, last + 1):
            writer = _DtWriter(self, day)
            head = self.buffers.pop(day, [])
            head.sort(key=_ITEMGETTER0)
            writer.write(0, head)  # late lines of earlier days, all older than this day's
            self.main_day(day, n_early, writer)
            if day < last:
                n_early, block = self.early_block(day + 1)
                writer.write(len(writer.rel) - 1, block)  # newer than all of this day's
            writer.close()
        for dt in sorted(self.buffers):
            self.write_spill(dt)

    def manifest(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "files": {path: {"lines": self.files[path]} for path in sorted(self.files)},
            "partitions": self.expected.partitions(),
            "orphan_clicks": self.expected.orphan_clicks(),
        }


def manifest_path(root: str) -> str:
    """Where ``generate`` leaves its manifest, as a URL/path under ``root``."""
    return f"{root.rstrip('/')}/landing/{MANIFEST_NAME}"


def generate(
    config: SampleConfig,
    root: str,
    *,
    on_progress: Callable[[int], None] | None = None,
    clean: bool = True,
) -> dict[str, Any]:
    """Write the sample landing zone under ``root`` (local path or fsspec URL); return the manifest.

    ``on_progress(n)`` is called as batches of ``n`` base events are generated. With ``clean``
    (default) existing ``landing/dt=*/part-*`` files and the old manifest are removed first, so
    the landing zone holds exactly what the manifest describes.
    """
    fs, base = fsspec.core.url_to_fs(root)
    base = base.rstrip("/")
    landing = f"{base}/landing"
    # Written before anything else and removed after the manifest: files of a sample cut short
    # (Ctrl-C, a kill) are still known as a sample's, not as landing data of unknown origin.
    if "://" not in root:
        fs.makedirs(landing, exist_ok=True)
    fs.pipe(f"{landing}/{WRITING_NAME}", b"")
    if clean:
        stale = fs.glob(f"{landing}/dt=*/part-*")
        if fs.exists(f"{landing}/{MANIFEST_NAME}"):
            stale.append(f"{landing}/{MANIFEST_NAME}")
        if stale:
            fs.rm(stale)
    run = _Run(config, fs, base, on_progress)
    # Millions of small acyclic objects: the cyclic GC would only rescan them (~10 % of the time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        run.run()
    finally:
        if gc_was_enabled:
            gc.enable()
    manifest = run.manifest()
    if run.local:
        fs.makedirs(landing, exist_ok=True)
    with fs.open(f"{landing}/{MANIFEST_NAME}", "wb") as fh:
        fh.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | _NL))
    fs.rm(f"{landing}/{WRITING_NAME}")
    return manifest


def load_manifest(root: str) -> dict[str, Any]:
    fs, base = fsspec.core.url_to_fs(root)
    with fs.open(f"{base.rstrip('/')}/landing/{MANIFEST_NAME}", "rb") as fh:
        return orjson.loads(fh.read())


def progress_bar(expected_events: int | None, label: str, *, stream: TextIO | None = None) -> tqdm:
    """The line a generation shows while it runs (``generate(..., on_progress=bar.update)``):
    events so far, of ``expected_events`` when known, the mean rate since the start and an ETA.
    Redrawn up to 10 times a second on a terminal; every 5 s elsewhere, so a CI log keeps a few
    updates rather than thousands."""
    stream = sys.stderr if stream is None else stream
    tty = stream.isatty()
    return tqdm(
        total=expected_events,
        desc=label,
        unit=" events",
        unit_scale=True,
        file=stream,
        mininterval=0.1 if tty else 5.0,
        smoothing=0,  # the rate since the start, not the last batch's
        dynamic_ncols=tty,
    )
