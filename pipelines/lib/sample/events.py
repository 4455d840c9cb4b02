"""The sample's events: users with their device, region and experiment bucket, sessions, and per
request the chain a recommender writes (request, ranking, impressions, clicks, sometimes an
error), each line passed through the fault injector."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

import orjson

from pipelines.lib.sample.config import (
    CLICK,
    DAY_MS,
    ERROR,
    IMPRESSION,
    K_CHOICES,
    RANKING,
    REQUEST,
    SCHEMA_VERSION,
    SampleConfig,
    uuid4_from_bits,
)
from pipelines.lib.sample.expectations import Expectations
from pipelines.lib.sample.faults import FaultInjector

# Requests start before this time of day, so a whole chain (< 51 s) stays on its event date.
_LAST_REQUEST_TOD = DAY_MS - 60_000
_SESSION_GAP_MS = 30 * 60_000

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
ERRORS = (
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


class RequestChains:
    """Generates request chains; ``emit`` writes them through ``faults``, counting the lines
    written without a fault in ``expected``."""

    def __init__(
        self,
        cfg: SampleConfig,
        rng: random.Random,
        expected: Expectations,
        faults: FaultInjector,
    ) -> None:
        self.cfg = cfg
        self.rng = rng
        self.expected = expected
        self.faults = faults
        self.sessions: dict[int, list[Any]] = {}
        width = max(5, len(str(cfg.items - 1)))
        self.item_ids = [f"item-{i:0{width}d}" for i in range(cfg.items)]
        self._setup_users()
        self.k_values, self.k_cuts = _cum(K_CHOICES)
        self.surfaces, self.surface_cuts = _cum(_SURFACES)
        self.engagements, self.engagement_cuts = _cum(_ENGAGEMENTS)
        self.errors, self.error_cuts = _cum(tuple((e, e[3]) for e in ERRORS))
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
        ``out`` as (sort key, line), lines for other dts to the fault injector's ``buffers``.
        Returns #events."""
        put = self._writer(day, home, out, cap)
        day_ms = day * DAY_MS
        return sum(self._chain(day_ms + tod, day, home, out, put) for tod in tods)

    def _writer(
        self, day: int, home: int, out: list[tuple[int, bytes]], cap: int
    ) -> Callable[[dict[str, Any], int, int], None]:
        """``put(event, ts, type)``: the event's line, as it is or with the fault its draw picks."""
        rnd, dumps, nl = self.rng.random, orjson.dumps, orjson.OPT_APPEND_NEWLINE
        fault_total, inject = self.faults.total, self.faults.inject
        rows = self.expected.parts[day].rows
        append = out.append
        early = home != day

        def put(d: dict[str, Any], ts: int, t: int) -> None:
            line = dumps(d, option=nl)
            u = rnd()
            if u >= fault_total:
                append((ts, line))
                rows[t] += 1
            else:
                inject(u, d, line, ts, t, day, home, out, cap, early)

        return put

    def _chain(
        self,
        ts: int,
        day: int,
        home: int,
        out: list[tuple[int, bytes]],
        put: Callable[[dict[str, Any], int, int], None],
    ) -> int:
        """One request at ``ts`` and everything it causes; returns how many events it made."""
        rnd, bits = self.rng.random, self.rng.getrandbits
        user, sid = self._user_and_session(ts)
        rid = uuid4_from_bits(bits(128))
        k = min(self.k_values[bisect_left(self.k_cuts, rnd())], self.cfg.items)
        surface = self.surfaces[bisect_left(self.surface_cuts, rnd())]
        put(self._request(ts, rid, user, sid, k, surface), ts, REQUEST)
        n_events = 0
        latency = min(2000.0, round(self.rng.lognormvariate(4.1, 0.6), 1))
        if rnd() < self.cfg.error_rate:
            ets = ts + int(rnd() * latency)
            put(self.error_event(ets, rid, user[0]), ets, ERROR)
            n_events += 1
        rts = ts + int(latency)
        ranked = self._ranking(rts, rid, user, k, latency, put)
        shown = min(k, self.cfg.impressions_per_request)
        its = rts + 50 + int(rnd() * 1500)
        n_events += 2 + shown
        return n_events + self._impressions(
            its, day, home, out, rid, user, sid, ranked, surface, put
        )

    def _user_and_session(self, ts: int) -> tuple[tuple[Any, ...], str]:
        """A user (popular ones more often) and their session: a new one after a 30-minute gap."""
        ui = int(self.cfg.users * self.rng.random() ** 1.6)
        sess = self.sessions.get(ui)
        if sess is None or abs(ts - sess[1]) > _SESSION_GAP_MS:
            sess = self.sessions[ui] = [f"s-{self.rng.getrandbits(64):016x}", ts]
        elif ts > sess[1]:
            sess[1] = ts
        return self.users[ui], sess[0]

    def _request(
        self, ts: int, rid: str, user: tuple[Any, ...], sid: str, k: int, surface: str
    ) -> dict[str, Any]:
        rnd = self.rng.random
        uid, device, region, locale, exp_id, bucket, _, _ = user
        d: dict[str, Any] = {
            "event_id": uuid4_from_bits(self.rng.getrandbits(128)),
            "event_type": "request",
            "schema_version": SCHEMA_VERSION,
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
        return d

    def _ranking(
        self,
        rts: int,
        rid: str,
        user: tuple[Any, ...],
        k: int,
        latency: float,
        put: Callable[[dict[str, Any], int, int], None],
    ) -> list[str]:
        """Writes the ranking event; returns the ranked item ids, best first."""
        rnd = self.rng.random
        item_ids, n_items = self.item_ids, self.cfg.items
        uid, _, _, _, exp_id, bucket, algorithm, alpha = user
        top = 6000 + int(3900 * rnd())  # scores in units of 1e-4, decreasing
        step = max(1, int(top / (k + 1) * (0.5 + 0.5 * rnd())))
        if 2 * k > n_items:
            ranked = self.rng.sample(item_ids, k)
        else:  # popular items (low ids) come up more often
            ranked = list(dict.fromkeys([item_ids[int(n_items * rnd() ** 1.5)] for _ in range(k)]))
            while len(ranked) < k:
                extra = item_ids[int(n_items * rnd())]
                if extra not in ranked:
                    ranked.append(extra)
        put(
            {
                "event_id": uuid4_from_bits(self.rng.getrandbits(128)),
                "event_type": "ranking",
                "schema_version": SCHEMA_VERSION,
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
            RANKING,
        )
        return ranked

    def _impressions(
        self,
        its: int,
        day: int,
        home: int,
        out: list[tuple[int, bytes]],
        rid: str,
        user: tuple[Any, ...],
        sid: str,
        ranked: list[str],
        surface: str,
        put: Callable[[dict[str, Any], int, int], None],
    ) -> int:
        """Writes the impressions of the first shown items, from ``its`` on, and their clicks;
        returns how many clicks."""
        rnd, bits, log = self.rng.random, self.rng.getrandbits, math.log
        uid, device = user[0], user[1]
        shown = min(len(ranked), self.cfg.impressions_per_request)
        probs = self.click_p[shown]
        clicks = 0
        for pos in range(1, shown + 1):
            if pos > 1:
                its += int(rnd() * 300)
            item = ranked[pos - 1]
            put(
                {
                    "event_id": uuid4_from_bits(bits(128)),
                    "event_type": "impression",
                    "schema_version": SCHEMA_VERSION,
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
                IMPRESSION,
            )
            if rnd() < probs[pos - 1]:
                clicks += 1
                self._click(its, day, home, out, rid, uid, sid, item, device, put)
        return clicks

    def _click(
        self,
        its: int,
        day: int,
        home: int,
        out: list[tuple[int, bytes]],
        rid: str,
        uid: str,
        sid: str,
        item: str,
        device: str,
        put: Callable[[dict[str, Any], int, int], None],
    ) -> None:
        rnd, bits = self.rng.random, self.rng.getrandbits
        cts = its + 300 + int(rnd() * 44_700)
        engagement = self.engagements[bisect_left(self.engagement_cuts, rnd())]
        c: dict[str, Any] = {
            "event_id": uuid4_from_bits(bits(128)),
            "event_type": "click",
            "schema_version": SCHEMA_VERSION,
            "timestamp_ms": cts,
            "request_id": rid,
            "user_id": uid,
            "session_id": sid,
            "canonical_id": item,
            "engagement_type": engagement,
        }
        if engagement == "click" and rnd() < 0.9:
            c["dwell_ms"] = min(3_600_000, int(self.rng.lognormvariate(9.6, 1.0)))
        c["device_type"] = device
        if rnd() < self.cfg.orphan_click_rate:
            # Valid, never faulted: an orphan is always the only copy of its line.
            c["request_id"] = uuid4_from_bits(bits(128))
            out.append((cts, orjson.dumps(c, option=orjson.OPT_APPEND_NEWLINE)))
            self.expected.count(home, day, CLICK)
            self.expected.orphans[day] += 1
        else:
            put(c, cts, CLICK)

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
            "event_id": uuid4_from_bits(rng.getrandbits(128)),
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
