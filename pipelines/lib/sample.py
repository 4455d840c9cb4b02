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
"""

from __future__ import annotations

import gc
import gzip
import math
import random
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, timedelta
from operator import itemgetter
from typing import Any

import fsspec
import orjson

from pipelines.lib.paths import landing_dir
from pipelines.lib.reasons import REASONS

SCHEMA_VERSION = "1.0.0"
EVENT_TYPES = ("request", "ranking", "impression", "click", "error")
# The reasons this generator produces (it writes neither oversize nor non-UTF-8 lines), in the
# ingest's precedence order.
# The reasons the generator plants (it writes no over-long, non-UTF-8 or PII-in-identifier lines).
QUARANTINE_REASONS = tuple(
    r for r in REASONS if r not in ("line_too_large", "not_utf8", "pii_in_field")
)
# Fault bands drawn once per event, in this order (``late`` is the valid late-but-in-window share).
FAULT_BANDS = (
    "late",
    "duplicate",
    "conflicting_duplicate",
    "malformed_json",
    "schema_violation",
    "unknown_event_type",
    "unknown_schema_version",
    "late_arrival",
    "future_timestamp",
)
MANIFEST_NAME = "sample_manifest.json"
# Beside the manifest while a sample is being written (see ``generate``).
WRITING_NAME = "sample_manifest.writing"
UNKNOWN_EVENT_TYPE = "pageview"
UNKNOWN_SCHEMA_VERSION = "9.9.9"

DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)
_REQUEST, _RANKING, _IMPRESSION, _CLICK, _ERROR = range(5)
_DUMPS = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE
_ITEMGETTER0 = itemgetter(0)
_ITEMGETTER1 = itemgetter(1)
# Requests start before this time of day, so a whole chain (< 51 s) stays on its event date.
_LAST_REQUEST_TOD = DAY_MS - 60_000
_EARLY_WINDOW_MS = 60_000  # early requests start in the first minute; their chains end < 2 min
_SESSION_GAP_MS = 30 * 60_000
_FLUSH_BYTES = 8 << 20

_K_CHOICES = ((10, 0.3), (20, 0.5), (50, 0.2))
_SURFACES = (("home", 0.5), ("search", 0.3), ("pdp", 0.15), ("category", 0.05))
_DEVICES = (("ios", 0.35), ("android", 0.35), ("web", 0.25), ("other", 0.05))
_REGIONS = (
    (("eu-west", "en-GB"), 0.3),
    (("eu-central", "de-DE"), 0.15),
    (("eu-west", "fr-FR"), 0.1),
    (("us-east", "en-US"), 0.2),
    (("us-west", "en-US"), 0.1),
    (("ap-south", "en-IN"), 0.07),
    (("sa-east", "pt-BR"), 0.05),
    (("ap-northeast", "ja-JP"), 0.03),
)
_ENGAGEMENTS = (
    ("click", 0.85),
    ("add_to_cart", 0.06),
    ("save", 0.04),
    ("share", 0.02),
    ("purchase", 0.03),
)
# UTC traffic profile (EU-heavy), relative weight per hour.
_HOURLY = (2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 5, 5.5, 6, 6, 6.5, 6, 6, 6, 6.5, 7, 8, 8.5, 8, 6, 4, 3)
_CATEGORIES = ("shoes", "jackets", "bags", "watches", "toys", "books", "kitchen", "garden")
_BRANDS = ("acme", "globex", "initech", "umbrella", "stark", "wayne")
_ALGORITHMS = {
    ("exp-ranker-v2", "control"): ("two-tower-v1", 0.0),
    ("exp-ranker-v2", "treatment"): ("two-tower-v2", 0.0),
    ("exp-diversity", "control"): ("two-tower-v1", 0.0),
    ("exp-diversity", "treatment"): ("two-tower-v1-mmr", 0.3),
}
_ERRORS = (
    # component, error_code, severity, weight, clean message template
    ("ranker", "TIMEOUT", "error", 0.3, "ranker timed out after {n} ms waiting for candidates"),
    ("feature-store", "FEATURE_MISSING", "warning", 0.25, "feature vector missing for {n} items"),
    ("api", "RATE_LIMITED", "warning", 0.15, "client exceeded {n} requests per minute"),
    ("candidate-gen", "UPSTREAM_UNAVAILABLE", "error", 0.1, "retrieval shard {n} unavailable"),
    ("api", "INVALID_FILTER", "info", 0.1, "ignored unsupported filter on field {n}"),
    ("ranker", "MODEL_NOT_LOADED", "critical", 0.1, "model replica {n} failed to load weights"),
)
_FIRST_NAMES = ("jane", "john", "maria", "li", "ahmed", "olga", "sam", "priya", "tom", "ana")
_LAST_NAMES = ("doe", "smith", "garcia", "wang", "khan", "ivanova", "lee", "patel", "brown")
_MAIL_DOMAINS = ("example.com", "example.org", "mail.example.net")
_TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737 documentation ranges

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid4_from_bits(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` for 128 random bits, a bit faster."""
    h = bits.to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _compact(line: bytes) -> bytes:
    """An exact-size copy: orjson's result keeps a >= 4 KiB allocation, too much to hold on to."""
    return bytes(memoryview(line))


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def day_date(n: int) -> date:
    return _EPOCH + timedelta(days=n)


def event_date_of(timestamp_ms: int) -> date:
    return day_date(timestamp_ms // DAY_MS)


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    share: float
    buckets: tuple[str, ...] = ("control", "treatment")


DEFAULT_EXPERIMENTS = (Experiment("exp-ranker-v2", 0.6), Experiment("exp-diversity", 0.4))


@dataclass(frozen=True)
class SampleConfig:
    """Everything that shapes the sample. Rates are per event unless said otherwise."""

    start: date = date(2025, 6, 2)
    days: int = 7
    seed: int = 7
    users: int = 2000
    items: int = 5000
    requests_per_day: int = 2000
    # Every request belongs to one experiment (users are assigned by share, buckets split equally).
    experiments: tuple[Experiment, ...] = DEFAULT_EXPERIMENTS
    ctr: float = 0.05  # clicks per impression (position-biased, this is the mean)
    impressions_per_request: int = 8
    error_rate: float = 0.01  # error events per request
    pii_in_errors: float = 0.3  # share of error messages holding an e-mail, phone or IPv4
    late_share: float = 0.03  # valid, lands on dt E+1 or E+2
    early_share: float = 0.005  # share of requests whose chain lands on dt E-1
    files_per_dt: int = 3
    gzip_level: int = 1  # fastest; the size of sample data does not matter
    malformed_json_rate: float = 0.001
    duplicate_rate: float = 0.01
    conflicting_duplicate_rate: float = 0.001
    schema_violation_rate: float = 0.002
    unknown_event_type_rate: float = 0.0005
    unknown_schema_version_rate: float = 0.0005
    late_arrival_rate: float = 0.001
    future_timestamp_rate: float = 0.0005
    orphan_click_rate: float = 0.001  # of clicks

    def __post_init__(self) -> None:
        if isinstance(self.start, str):
            object.__setattr__(self, "start", date.fromisoformat(self.start))
        experiments = tuple(
            Experiment(e["experiment_id"], e["share"], tuple(e.get("buckets", ("control",))))
            if isinstance(e, dict)
            else e
            for e in self.experiments
        )
        object.__setattr__(self, "experiments", experiments)
        for name in ("days", "users", "items", "files_per_dt", "impressions_per_request"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.requests_per_day < 0:
            raise ValueError("requests_per_day must be >= 0")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError("gzip_level must be 0..9")
        for name in self.rate_fields():
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if sum(self.band_rates()) >= 1.0:
            raise ValueError("late_share plus the fault rates must stay below 1")
        if not self.experiments or any(e.share <= 0 or not e.buckets for e in self.experiments):
            raise ValueError("experiments need a positive share and at least one bucket each")

    @staticmethod
    def rate_fields() -> tuple[str, ...]:
        names = ("ctr", "error_rate", "pii_in_errors", "late_share", "early_share")
        return names + tuple(f.name for f in fields(SampleConfig) if f.name.endswith("_rate"))

    def band_rates(self) -> tuple[float, ...]:
        """Per-event probabilities of ``FAULT_BANDS``, in that order."""
        return (self.late_share, *(getattr(self, f"{b}_rate") for b in FAULT_BANDS[1:]))

    @property
    def end(self) -> date:
        """Last event date generated (inclusive)."""
        return self.start + timedelta(days=self.days - 1)

    def valid_events_per_request(self) -> float:
        total_w = sum(w for _, w in _K_CHOICES)
        shown = sum(w * min(k, self.items, self.impressions_per_request) for k, w in _K_CHOICES)
        shown /= total_w
        return 2 + shown * (1 + self.ctr) + self.error_rate

    def lines_per_request(self) -> float:
        """Expected landing lines per request, injected copies included."""
        return self.valid_events_per_request() * (1 + sum(self.band_rates()[1:]))

    def for_lines_per_day(self, lines: int) -> SampleConfig:
        """A copy whose ``requests_per_day`` yields about ``lines`` landing lines a day."""
        return replace(self, requests_per_day=max(1, round(lines / self.lines_per_request())))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["experiments"] = [
            {"experiment_id": e.experiment_id, "share": e.share, "buckets": list(e.buckets)}
            for e in self.experiments
        ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleConfig:
        """Inverse of ``to_dict`` (e.g. ``SampleConfig.from_dict(manifest["config"])``)."""
        return cls(**data)


def _cum(table: tuple[tuple[Any, float], ...]) -> tuple[list[Any], list[float]]:
    total = sum(w for _, w in table)
    values, cuts, acc = [], [], 0.0
    for value, weight in table:
        acc += weight / total
        values.append(value)
        cuts.append(acc)
    cuts[-1] = 1.0
    return values, cuts


def _pick(values: list[Any], cuts: list[float], u: float) -> Any:
    return values[bisect_left(cuts, u)]


class _Partition:
    __slots__ = ("duplicates", "quarantined", "rows")

    def __init__(self) -> None:
        self.rows = [0, 0, 0, 0, 0]
        self.duplicates = 0
        self.quarantined: dict[str, int] = defaultdict(int)

    def any(self) -> bool:
        return any(self.rows) or self.duplicates > 0 or any(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(zip(EVENT_TYPES, self.rows, strict=True)),
            "duplicates": self.duplicates,
            "quarantined": {
                r: self.quarantined[r] for r in QUARANTINE_REASONS if self.quarantined[r]
            },
        }


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
        self.parts: dict[int, _Partition] = defaultdict(_Partition)
        self.orphans: dict[int, int] = defaultdict(int)
        self.buffers: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.sessions: dict[int, list[Any]] = {}
        cuts, acc = [], 0.0
        for rate in cfg.band_rates():
            acc += rate
            cuts.append(acc)
        self.band_cuts = cuts
        self.fault_total = acc
        width = max(5, len(str(cfg.items - 1)))
        self.item_ids = [f"item-{i:0{width}d}" for i in range(cfg.items)]
        self._setup_users()
        self.k_values, self.k_cuts = _cum(_K_CHOICES)
        self.surfaces, self.surface_cuts = _cum(_SURFACES)
        self.engagements, self.engagement_cuts = _cum(_ENGAGEMENTS)
        self.errors, self.error_cuts = _cum(tuple((e, e[3]) for e in _ERRORS))
        # Position bias 1/log2(p+1), scaled so the mean click probability over shown items is ctr.
        self.click_p: dict[int, list[float]] = {}
        for m in range(1, cfg.impressions_per_request + 1):
            bias = [1 / math.log2(p + 1) for p in range(1, m + 1)]
            scale = cfg.ctr * m / sum(bias)
            self.click_p[m] = [min(1.0, b * scale) for b in bias]

    def _setup_users(self) -> None:
        cfg, rng = self.cfg, self.rng
        devices, device_cuts = _cum(_DEVICES)
        regions, region_cuts = _cum(_REGIONS)
        experiments, exp_cuts = _cum(tuple((e, e.share) for e in cfg.experiments))
        width = max(6, len(str(cfg.users - 1)))
        self.users = []
        for i in range(cfg.users):
            exp = _pick(experiments, exp_cuts, rng.random())
            bucket = exp.buckets[int(rng.random() * len(exp.buckets))]
            default = ("two-tower-v1", 0.0)
            if bucket != exp.buckets[0]:
                default = (f"two-tower-v1-{bucket}", 0.1)
            algorithm, alpha = _ALGORITHMS.get((exp.experiment_id, bucket), default)
            region, locale = _pick(regions, region_cuts, rng.random())
            device = _pick(devices, device_cuts, rng.random())
            user = (f"u-{i:0{width}d}", device, region, locale, exp.experiment_id, bucket)
            self.users.append((*user, algorithm, alpha))

    # -- counting ------------------------------------------------------------------------------

    def count(self, landing: int, event_day: int, what: int | str) -> int | str:
        """Apply the ingest's ownership rule to one written line and record it."""
        if what == "malformed_json":
            part, cat = landing, what
        elif event_day < landing - 2:
            part, cat = landing, "late_arrival"
        elif event_day > landing + 1:
            part, cat = landing, "future_timestamp"
        else:
            part, cat = event_day, what
        p = self.parts[part]
        if isinstance(cat, int):
            p.rows[cat] += 1
        elif cat == "duplicate":
            p.duplicates += 1
        else:
            p.quarantined[cat] += 1
        return cat

    # -- generation ----------------------------------------------------------------------------

    def uuid(self) -> str:
        return uuid4_from_bits(self.rng.getrandbits(128))

    def request_times(self, n: int, window: int | None) -> list[int]:
        rng = self.rng
        if window is not None:
            return sorted(int(rng.random() * window) for _ in range(n))
        weights = list(_HOURLY)
        hours = rng.choices(range(24), weights=weights, k=n)
        last = _LAST_REQUEST_TOD - 23 * 3_600_000
        out = [h * 3_600_000 + int(rng.random() * (last if h == 23 else 3_600_000)) for h in hours]
        out.sort()
        return out

    def emit(
        self, day: int, tods: list[int], home: int, out: list[tuple[int, bytes]], cap: int
    ) -> int:
        """Generate the request chains starting at ``tods`` of ``day``; lines for dt ``home`` go to
        ``out`` as (sort key, line), lines for other dts to ``self.buffers``. Returns #events."""
        cfg, rng = self.cfg, self.rng
        rnd, bits, sample, lognorm = rng.random, rng.getrandbits, rng.sample, rng.lognormvariate
        log = math.log
        uuid = uuid4_from_bits
        dumps, nl, ver = _DUMPS, _NL, SCHEMA_VERSION
        users, n_users, sessions = self.users, cfg.users, self.sessions
        item_ids, n_items = self.item_ids, cfg.items
        k_values, k_cuts = self.k_values, self.k_cuts
        surfaces, surface_cuts = self.surfaces, self.surface_cuts
        engagements, engagement_cuts = self.engagements, self.engagement_cuts
        click_p, ipr = self.click_p, cfg.impressions_per_request
        error_rate, orphan_rate = cfg.error_rate, cfg.orphan_click_rate
        fault_total = self.fault_total
        rows = self.parts[day].rows
        append = out.append
        early = home != day
        day_ms = day * DAY_MS
        fault = self.fault
        n_events = 0

        def put(d: dict[str, Any], ts: int, t: int) -> None:
            line = dumps(d, option=nl)
            u = rnd()
            if u >= fault_total:
                append((ts, line))
                rows[t] += 1
            else:
                fault(u, d, line, ts, t, day, home, out, cap, early)

        for tod in tods:
            ts = day_ms + tod
            ui = int(n_users * rnd() ** 1.6)
            uid, device, region, locale, exp_id, bucket, algorithm, alpha = users[ui]
            sess = sessions.get(ui)
            if sess is None or abs(ts - sess[1]) > _SESSION_GAP_MS:
                sess = sessions[ui] = [f"s-{bits(64):016x}", ts]
            elif ts > sess[1]:
                sess[1] = ts
            sid = sess[0]
            rid = uuid(bits(128))
            k = min(k_values[bisect_left(k_cuts, rnd())], n_items)
            surface = surfaces[bisect_left(surface_cuts, rnd())]
            d: dict[str, Any] = {
                "event_id": uuid(bits(128)),
                "event_type": "request",
                "schema_version": ver,
                "timestamp_ms": ts,
                "request_id": rid,
                "user_id": uid,
            }
            if rnd() >= 0.05:
                d["session_id"] = sid
            d["k"] = k
            if (surface == "search" and rnd() < 0.7) or rnd() < 0.05:
                d["filters"] = self.filters()
            d["experiment_id"] = exp_id
            d["bucket"] = bucket
            d["region"] = region
            d["locale"] = locale
            d["device_type"] = device
            d["surface"] = surface
            put(d, ts, _REQUEST)

            latency = min(2000.0, round(lognorm(4.1, 0.6), 1))
            if rnd() < error_rate:
                ets = ts + int(rnd() * latency)
                put(self.error_event(ets, rid, uid), ets, _ERROR)
                n_events += 1
            rts = ts + int(latency)
            top = 6000 + int(3900 * rnd())  # scores in units of 1e-4, decreasing
            step = max(1, int(top / (k + 1) * (0.5 + 0.5 * rnd())))
            if 2 * k > n_items:
                ranked = sample(item_ids, k)
            else:  # popular items (low ids) come up more often
                ranked = list(
                    dict.fromkeys([item_ids[int(n_items * rnd() ** 1.5)] for _ in range(k)])
                )
                while len(ranked) < k:
                    extra = item_ids[int(n_items * rnd())]
                    if extra not in ranked:
                        ranked.append(extra)
            put(
                {
                    "event_id": uuid(bits(128)),
                    "event_type": "ranking",
                    "schema_version": ver,
                    "timestamp_ms": rts,
                    "request_id": rid,
                    "user_id": uid,
                    "latency_ms": latency,
                    "coverage": round(0.35 + 0.6 * rnd(), 4),
                    "algorithm": algorithm,
                    "alpha": alpha,
                    "items": [
                        {"canonical_id": c, "position": i, "score": (top - i * step) / 10_000}
                        for i, c in enumerate(ranked, 1)
                    ],
                    "experiment_id": exp_id,
                    "bucket": bucket,
                },
                rts,
                _RANKING,
            )
            shown = min(k, ipr)
            probs = click_p[shown]
            its = rts + 50 + int(rnd() * 1500)
            n_events += 2 + shown
            for pos in range(1, shown + 1):
                if pos > 1:
                    its += int(rnd() * 300)
                item = ranked[pos - 1]
                put(
                    {
                        "event_id": uuid(bits(128)),
                        "event_type": "impression",
                        "schema_version": ver,
                        "timestamp_ms": its,
                        "request_id": rid,
                        "user_id": uid,
                        "session_id": sid,
                        "canonical_id": item,
                        "position": pos,
                        "visible_ms": min(600_000, int(-1250 * log(1.0 - rnd()))),
                        "surface": surface,
                        "device_type": device,
                    },
                    its,
                    _IMPRESSION,
                )
                if rnd() < probs[pos - 1]:
                    n_events += 1
                    cts = its + 300 + int(rnd() * 44_700)
                    engagement = engagements[bisect_left(engagement_cuts, rnd())]
                    c: dict[str, Any] = {
                        "event_id": uuid(bits(128)),
                        "event_type": "click",
                        "schema_version": ver,
                        "timestamp_ms": cts,
                        "request_id": rid,
                        "user_id": uid,
                        "session_id": sid,
                        "canonical_id": item,
                        "engagement_type": engagement,
                    }
                    if engagement == "click" and rnd() < 0.9:
                        c["dwell_ms"] = min(3_600_000, int(lognorm(9.6, 1.0)))
                    c["device_type"] = device
                    if rnd() < orphan_rate:
                        # Valid, never faulted: an orphan is always the only copy of its line.
                        c["request_id"] = uuid(bits(128))
                        append((cts, dumps(c, option=nl)))
                        self.count(home, day, _CLICK)
                        self.orphans[day] += 1
                    else:
                        put(c, cts, _CLICK)
        return n_events

    def filters(self) -> dict[str, Any]:
        rnd = self.rng.random
        f: dict[str, Any] = {"category": _CATEGORIES[int(rnd() * len(_CATEGORIES))]}
        if rnd() < 0.5:
            f["price_max"] = 20 * (1 + int(rnd() * 15))
        if rnd() < 0.2:
            f["brand"] = sorted(self.rng.sample(_BRANDS, 2))
        if rnd() < 0.3:
            f["in_stock"] = True
        return f

    def error_event(self, ts: int, rid: str, uid: str) -> dict[str, Any]:
        rng = self.rng
        rnd = rng.random
        component, code, severity, _, template = _pick(self.errors, self.error_cuts, rnd())
        message = template.format(n=10 + int(rnd() * 990))
        if rnd() < self.cfg.pii_in_errors:
            message += "; " + self.pii_note()
        d: dict[str, Any] = {
            "event_id": self.uuid(),
            "event_type": "error",
            "schema_version": SCHEMA_VERSION,
            "timestamp_ms": ts,
            "component": component,
            "severity": severity,
            "error_code": code,
            "message": message,
        }
        if rnd() < 0.8:  # some errors are not tied to a request (health checks, batch jobs)
            d["request_id"] = rid
            d["user_id"] = uid
        return d

    def pii_note(self) -> str:
        rng = self.rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        email = f"{first}.{last}@{rng.choice(_MAIL_DOMAINS)}"
        phone = f"+44 20 7946 {rng.randrange(10_000):04d}"
        ip = f"{rng.choice(_TEST_NETS)}.{1 + rng.randrange(254)}"
        kind = rng.randrange(4)
        if kind == 0:
            return f"user {email} reported the failure"
        if kind == 1:
            return f"callback requested on {phone}"
        if kind == 2:
            return f"client ip {ip}"
        return f"contact {email} or {phone} (from {ip})"

    # -- faults --------------------------------------------------------------------------------

    def fault(
        self,
        u: float,
        d: dict[str, Any],
        line: bytes,
        ts: int,
        t: int,
        day: int,
        home: int,
        out: list[tuple[int, bytes]],
        cap: int,
        early: bool,
    ) -> None:
        rng = self.rng
        rnd = rng.random
        band = FAULT_BANDS[bisect_left(self.band_cuts, u)]
        if band == "late" and not early:
            dest = day + (1 if rnd() < 0.7 else 2)
            self.buffers[dest].append((ts, _compact(line)))
            self.count(dest, day, t)
            return
        # The original, as usual.
        out.append((ts, line))
        self.count(home, day, t)
        if band == "late":
            return
        if band in ("duplicate", "conflicting_duplicate"):
            if band == "conflicting_duplicate":
                line = _DUMPS(self.conflicting(d, t), option=_NL)
            later = day + 2 - home  # dts after the original's that still map to this partition
            dest = home if rnd() < 0.6 else home + 1 + int(rnd() * later)
            if dest == home:
                out.append((min(ts + 1 + int(rnd() * 600_000), cap), line))
            else:
                self.buffers[dest].append((ts, _compact(line)))
            self.count(dest, day, band)
            return
        c = dict(d)
        c["event_id"] = self.uuid()
        dest, event_day = home, day
        if band == "malformed_json":
            raw = _DUMPS(c)
            line = raw[: 1 + int(rnd() * (len(raw) - 1))] + b"\n"
        else:
            if band == "schema_violation":
                self.violate(c, t)
            elif band == "unknown_event_type":
                c["event_type"] = UNKNOWN_EVENT_TYPE
            elif band == "unknown_schema_version":
                c["schema_version"] = UNKNOWN_SCHEMA_VERSION
            elif band == "late_arrival":
                dest = day + 3 + int(rnd() * 3)
            elif band == "future_timestamp":
                shift = 2 + int(rnd() * 2)
                c["timestamp_ms"] = ts + shift * DAY_MS
                event_day = day + shift
            line = _DUMPS(c, option=_NL)
        if dest == home:
            out.append((ts, line))
        else:
            self.buffers[dest].append((ts, _compact(line)))
        got = self.count(dest, event_day, band)
        assert got == band, (band, got)

    def conflicting(self, d: dict[str, Any], t: int) -> dict[str, Any]:
        c = dict(d)
        rnd = self.rng.random
        if t == _REQUEST:
            c["k"] = d["k"] + 10 if d["k"] <= 990 else d["k"] - 10
        elif t == _RANKING:
            c["latency_ms"] = round(d["latency_ms"] + 1 + rnd() * 50, 1)
        elif t == _IMPRESSION:
            c["visible_ms"] = d["visible_ms"] + 1 + int(rnd() * 1000)
        elif t == _CLICK:
            c["dwell_ms"] = d.get("dwell_ms", 0) + 1 + int(rnd() * 5000)
            c["device_type"] = c.pop("device_type")  # keep the usual key order
        else:
            c["severity"] = "critical" if d["severity"] != "critical" else "error"
        return c

    def violate(self, c: dict[str, Any], t: int) -> None:
        """Exactly one contract violation that leaves the event's date readable."""
        rng = self.rng
        options: list[tuple[str, Any]] = [("usr_id", c.get("user_id", "u-000000"))]
        missing = {
            _REQUEST: ("user_id", "k", "region", "surface"),
            _RANKING: ("items", "algorithm", "request_id"),
            _IMPRESSION: ("canonical_id", "position", "session_id"),
            _CLICK: ("engagement_type", "canonical_id", "session_id"),
            _ERROR: ("component", "severity", "error_code"),
        }[t]
        options += [("-", name) for name in missing]
        if t == _REQUEST:
            options += [("k", 0), ("k", 5000), ("device_type", "toaster")]
        elif t == _RANKING:
            options += [("latency_ms", -12.5), ("coverage", 1.7), ("items", []), ("pos0", 0)]
        elif t == _IMPRESSION:
            options += [("position", 0), ("visible_ms", -1), ("device_type", "toaster")]
        elif t == _CLICK:
            options += [("engagement_type", "like"), ("dwell_ms", -3), ("device_type", "toaster")]
        else:
            options += [("severity", "fatal"), ("error_code", "timeout")]
        key, value = options[rng.randrange(len(options))]
        if key == "-":
            del c[value]
        elif key == "pos0":
            items = [dict(it) for it in c["items"]]
            items[0]["position"] = 0
            c["items"] = items
        else:
            c[key] = value

    # -- driver --------------------------------------------------------------------------------

    def early_block(self, day: int) -> tuple[int, list[tuple[int, bytes]]]:
        """The early requests of ``day``: their count and the sorted lines landing on dt day-1."""
        cfg = self.cfg
        expected = cfg.requests_per_day * cfg.early_share
        n = min(cfg.requests_per_day, int(expected + self.rng.random()))
        out: list[tuple[int, bytes]] = []
        done = self.emit(day, self.request_times(n, _EARLY_WINDOW_MS), day - 1, out, 1 << 62)
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
        tods = self.request_times(self.cfg.requests_per_day - n_early, None)
        cap = (day + 1) * DAY_MS - 1
        pending: list[tuple[int, bytes]] = []
        for lo in range(0, len(tods), chunk):
            done = self.emit(day, tods[lo : lo + chunk], day, pending, cap)
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
            "partitions": {
                day_date(d).isoformat(): self.parts[d].to_dict()
                for d in sorted(self.parts)
                if self.parts[d].any()
            },
            "orphan_clicks": {
                day_date(d).isoformat(): self.orphans[d] for d in sorted(self.orphans)
            },
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
