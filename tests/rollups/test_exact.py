"""Every rollup is exact: each metric is recomputed here in plain Python from the events read back
from the lake (no SQL) and compared value for value with the rollup files: the same rows (grain
keys), the same columns, ints exactly, floats to 1e-9 relative, nulls as None.

The lake: two generated weeks (2025-06-02 .. 06-15) plus a few hand-written request chains that
cross midnight (also the week boundaries), a request without an experiment, an orphan click and an
error without a request; every day of June ingested (the empty days too, so the month can build),
contracts run for two days (for the compliance report's violations section).

A second, tiny lake holds a request_id sent twice (a client retry): the first request decides the
dimensions of everything that belongs to that request_id.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.lib.contracts.run import run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import MODELS_BY_NAME, build_rollup
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate

EVENT_TYPES = ("request", "ranking", "impression", "click", "error")
JUNE = [date(2025, 6, 1) + timedelta(days=n) for n in range(30)]
WEEK_1, WEEK_2 = date(2025, 6, 2), date(2025, 6, 9)  # Mondays
MONTH = date(2025, 6, 1)
DAILY_DAYS = JUNE[:16]  # 06-01 (hand-written events only) .. 06-16 (no events at all)
HOURLY_DAYS = [date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 5), date(2025, 6, 16)]
CONTRACT_DAYS = [date(2025, 6, 2), date(2025, 6, 3)]
EPOCH = datetime(1970, 1, 1)
HOUR_MS = 3_600_000

# The traffic rollups' columns besides the grain keys, as the reference computes them.
TRAFFIC_KEYS = ("experiment_id", "bucket", "surface", "device_type", "is_all_traffic")
ENGAGEMENTS = ("click", "add_to_cart", "save", "share", "purchase")
TRAFFIC_METRICS = (
    "coverage_mean",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "dwell_mean_ms",
    "dwell_median_ms",
    "requests",
    "rankings",
    "impressions",
    "clicks",
    *(f"clicks_{e}" for e in ENGAGEMENTS),
    "errors",
    "distinct_users",
    "distinct_items_ranked",
    "distinct_items_impressed",
    "distinct_sessions",
    "ctr",
    "item_coverage",
    "error_rate",
    "impressions_per_request",
    "clicks_per_session",
)
# The experiments rollup's columns that come from SQL (the rest are experiments.evaluate's).
EXPERIMENT_SQL_COLUMNS = (
    "requests_assigned",
    "users_assigned",
    "requests",
    "impressions",
    "clicks",
    "impressions_sq",
    "clicks_sq",
    "clicks_impressions",
    "latency_p95_ms",
    "error_rate",
)


# -- comparing -------------------------------------------------------------------------------------


def same(got: Any, want: Any) -> bool:
    """Null as None; a float to 1e-9 relative (tiny absolute slack around 0); else type and ==."""
    if got is None or want is None:
        return got is None and want is None
    if isinstance(want, float):
        return (
            isinstance(got, float)
            and not math.isnan(got)
            and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
        )
    return type(got) is type(want) and got == want


def discrepancies(
    actual: list[dict],
    expected: dict[tuple, dict],
    key: Callable[[dict], tuple],
    ignore: Callable[[str], bool] = lambda _column: False,
) -> list[str]:
    """Every way ``actual`` rows differ from ``expected`` (key -> row): rows missing, extra or
    repeated, columns missing or extra, values not ``same``."""
    problems = []
    by_key: dict[tuple, dict] = {}
    for row in actual:
        k = key(row)
        if k in by_key:
            problems.append(f"row {k} appears twice")
        by_key[k] = row
    problems += [f"row {k} missing" for k in sorted(expected.keys() - by_key.keys(), key=repr)]
    problems += [
        f"row {k} not expected: {by_key[k]}" for k in sorted(by_key.keys() - expected, key=repr)
    ]
    for k in sorted(expected.keys() & by_key.keys(), key=repr):
        want, got = expected[k], by_key[k]
        columns = {c for c in got if not ignore(c)}
        problems += [f"row {k}: column {c} not expected" for c in sorted(columns - want.keys())]
        for column, value in want.items():
            if column not in got:
                problems.append(f"row {k}: column {column} missing")
            elif not same(got[column], value):
                problems.append(f"row {k}: {column} = {got[column]!r}, reference {value!r}")
    return problems


def assert_exact(actual: list[dict], expected: dict[tuple, dict], key, ignore=None) -> None:
    problems = discrepancies(actual, expected, key, *([ignore] if ignore else []))
    assert not problems, f"{len(problems)} discrepancies:\n" + "\n".join(problems[:40])


def traffic_key(row: dict) -> tuple:
    return tuple(row[k] for k in TRAFFIC_KEYS)


def is_change(column: str) -> bool:
    return column.endswith("_change")


# -- the reference, in plain Python ----------------------------------------------------------------


def quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (SQL quantile_cont, numpy's default)."""
    return float(np.quantile(values, q, method="linear")) if values else None


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


class Events:
    """The lake's event rows (and side tables), read back with pyarrow, cached per file."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, list[dict]] = {}

    def _read(self, rel: str) -> list[dict]:
        if rel not in self._cache:
            path = self.root / rel
            self._cache[rel] = pq.read_table(path).to_pylist() if path.exists() else []
        return self._cache[rel]

    def of(self, event_type: str, first: date, last: date | None = None) -> list[dict]:
        return [
            row
            for d in days(first, last or first)
            for row in self._read(
                f"events/event_type={event_type}/event_date={d}/part-00000.parquet"
            )
        ]

    def side(self, table: str, first: date, last: date) -> list[dict]:
        """quarantine / ledger / contracts rows of the days that have a file."""
        return [
            row
            for d in days(first, last)
            for row in self._read(f"{table}/event_date={d}/part-00000.parquet")
        ]


def first_request_dims(events: Events, first: date, last: date) -> dict[str, tuple]:
    """request_id -> (experiment_id, bucket, surface, device_type) of its first request (by
    timestamp_ms) among the requests of the day before the period .. the period's last day."""
    chosen: dict[str, dict] = {}
    for r in events.of("request", first - timedelta(days=1), last):
        seen = chosen.get(r["request_id"])
        if seen is None or r["timestamp_ms"] < seen["timestamp_ms"]:
            chosen[r["request_id"]] = r
    return {
        rid: (r["experiment_id"], r["bucket"], r["surface"], r["device_type"])
        for rid, r in chosen.items()
    }


@dataclass
class TrafficBag:
    """Everything one traffic row is computed from."""

    users: list[str] = field(default_factory=list)  # one per request
    coverage: list[float] = field(default_factory=list)  # one per ranking
    latency: list[float] = field(default_factory=list)
    items_ranked: set[str] = field(default_factory=set)
    impressions: int = 0
    items_impressed: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    engagements: Counter = field(default_factory=Counter)  # one per click
    dwell: list[int] = field(default_factory=list)  # clicks with a dwell_ms
    errors: int = 0


ALL_TRAFFIC = (None, None, None, None, True)
UNKNOWN_REQUEST = (None, None, None, None)


def reference_traffic(events: Events, first: date, last: date) -> dict[tuple, dict]:
    """traffic.sql's rows: each event of the period counts for the dimensions of its request (or
    for the unknown-request row, flagged is_unattributed) and for the all-traffic row, which
    always exists."""
    dims = first_request_dims(events, first, last)
    bags: dict[tuple, TrafficBag] = {ALL_TRAFFIC: TrafficBag()}
    unattributed: set[tuple] = set()  # the rows of events whose request was not found

    def bags_of(event: dict) -> list[TrafficBag]:
        key = (*dims.get(event["request_id"], UNKNOWN_REQUEST), False)
        if event["request_id"] not in dims:
            unattributed.add(key)
        return [bags.setdefault(key, TrafficBag()), bags[ALL_TRAFFIC]]

    for r in events.of("request", first, last):
        for bag in bags_of(r):
            bag.users.append(r["user_id"])
    for r in events.of("ranking", first, last):
        for bag in bags_of(r):
            bag.coverage.append(r["coverage"])
            bag.latency.append(r["latency_ms"])
            bag.items_ranked.update(item["canonical_id"] for item in r["items"])
    for i in events.of("impression", first, last):
        for bag in bags_of(i):
            bag.impressions += 1
            bag.items_impressed.add(i["canonical_id"])
            bag.sessions.add(i["session_id"])
    for c in events.of("click", first, last):
        for bag in bags_of(c):
            bag.engagements[c["engagement_type"]] += 1
            if c["dwell_ms"] is not None:
                bag.dwell.append(c["dwell_ms"])
    for e in events.of("error", first, last):
        for bag in bags_of(e):
            bag.errors += 1

    rows = {}
    for key, b in bags.items():
        requests, clicks = len(b.users), sum(b.engagements.values())
        row = {
            "coverage_mean": mean(b.coverage),
            "latency_p50_ms": quantile(b.latency, 0.5),
            "latency_p95_ms": quantile(b.latency, 0.95),
            "latency_p99_ms": quantile(b.latency, 0.99),
            "latency_mean_ms": mean(b.latency),
            "dwell_mean_ms": mean(b.dwell),
            "dwell_median_ms": quantile(b.dwell, 0.5),
            "requests": requests,
            "rankings": len(b.latency),
            "impressions": b.impressions,
            "clicks": clicks,
            **{f"clicks_{e}": b.engagements[e] for e in ENGAGEMENTS},
            "errors": b.errors,
            "distinct_users": len(set(b.users)),
            "distinct_items_ranked": len(b.items_ranked),
            "distinct_items_impressed": len(b.items_impressed),
            "distinct_sessions": len(b.sessions),
            "ctr": ratio(clicks, b.impressions),
            "item_coverage": ratio(len(b.items_impressed), len(b.items_ranked)),
            "error_rate": ratio(b.errors, requests),
            "impressions_per_request": ratio(b.impressions, requests),
            "clicks_per_session": ratio(clicks, len(b.sessions)),
        }
        assert tuple(row) == TRAFFIC_METRICS
        rows[key] = {
            **dict(zip(TRAFFIC_KEYS, key, strict=True)),
            "is_unattributed": key in unattributed,
            **row,
            "period_start": first,
            "period_end": last,
        }
    return rows


def reference_hourly(events: Events, day: date) -> dict[tuple, dict]:
    """hourly.sql: per UTC hour with any event of the day, the count of each type, the distinct
    users of all its events and the p95 of the rankings' latency."""
    counts: dict[int, Counter] = defaultdict(Counter)
    latencies: dict[int, list[float]] = defaultdict(list)
    users: dict[int, set] = defaultdict(set)
    for event_type in EVENT_TYPES:
        for e in events.of(event_type, day):
            hour = e["timestamp_ms"] // HOUR_MS
            counts[hour][event_type] += 1
            users[hour].add(e.get("user_id"))
            if event_type == "ranking":
                latencies[hour].append(e["latency_ms"])
    rows = {}
    for hour, n in counts.items():
        start = ms_to_datetime(hour * HOUR_MS)
        rows[(start,)] = {
            "hour_start": start,
            "requests": n["request"],
            "impressions": n["impression"],
            "clicks": n["click"],
            "errors": n["error"],
            "distinct_users": len(users[hour] - {None}),
            "latency_p95_ms": quantile(latencies[hour], 0.95),
        }
    return rows


def reference_errors(events: Events, day: date) -> dict[tuple, dict]:
    """errors.sql: per (component, severity, error_code): count, distinct request_ids and
    user_ids (nulls excluded), first and last seen, rank by count (1 + the number of codes seen
    more often)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in events.of("error", day):
        groups[(e["component"], e["severity"], e["error_code"])].append(e)
    rows = {}
    for key, errs in groups.items():
        times = [e["timestamp_ms"] for e in errs]
        rows[key] = {
            "component": key[0],
            "severity": key[1],
            "error_code": key[2],
            "errors": len(errs),
            "distinct_requests": len({e["request_id"] for e in errs} - {None}),
            "distinct_users": len({e.get("user_id") for e in errs} - {None}),
            "first_seen": ms_to_datetime(min(times)),
            "last_seen": ms_to_datetime(max(times)),
        }
    for row in rows.values():
        row["rank_by_count"] = 1 + sum(other["errors"] > row["errors"] for other in rows.values())
    return rows


def reference_experiments(events: Events, first: date, last: date) -> dict[tuple, dict]:
    """experiment_stats.sql's columns: per (experiment_id, bucket) of the period's requests that
    name an experiment: requests and users assigned; over the exposed requests (>= 1 impression in
    the period) the sums of n, c, n², c², c·n (n impressions, c clicks of the request in the
    period); the p95 latency of their rankings; errors of their requests per request assigned."""
    requests = [r for r in events.of("request", first, last) if r["experiment_id"] is not None]
    arm_of = {r["request_id"]: (r["experiment_id"], r["bucket"]) for r in requests}
    assert len(arm_of) == len(requests), "a request_id twice: this reference assumes none"
    n = Counter(i["request_id"] for i in events.of("impression", first, last))
    c = Counter(k["request_id"] for k in events.of("click", first, last))
    latency: dict[tuple, list[float]] = defaultdict(list)
    for r in events.of("ranking", first, last):
        if r["request_id"] in arm_of:
            latency[arm_of[r["request_id"]]].append(r["latency_ms"])
    errors = Counter(
        arm_of[e["request_id"]]
        for e in events.of("error", first, last)
        if e["request_id"] in arm_of
    )
    rows: dict[tuple, dict] = {}
    for r in requests:
        arm = arm_of[r["request_id"]]
        row = rows.setdefault(
            arm,
            {
                "experiment_id": arm[0],
                "bucket": arm[1],
                "requests_assigned": 0,
                "users": set(),
                "requests": 0,
                "impressions": 0,
                "clicks": 0,
                "impressions_sq": 0,
                "clicks_sq": 0,
                "clicks_impressions": 0,
            },
        )
        row["requests_assigned"] += 1
        row["users"].add(r["user_id"])
        ni, ci = n[r["request_id"]], c[r["request_id"]]
        if ni:
            row["requests"] += 1
            row["impressions"] += ni
            row["clicks"] += ci
            row["impressions_sq"] += ni * ni
            row["clicks_sq"] += ci * ci
            row["clicks_impressions"] += ci * ni
    for arm, row in rows.items():
        row["users_assigned"] = len(row.pop("users"))
        row["latency_p95_ms"] = quantile(latency[arm], 0.95)
        row["error_rate"] = errors[arm] / row["requests_assigned"]
    return rows


def schema_pii_classes() -> dict[str, dict[str, list[str]]]:
    """event_type -> PII class -> its fields, from the x-pii of every property of the schemas."""
    out: dict[str, dict[str, list[str]]] = {}
    for path in sorted((PROJECT_ROOT / "schemas" / "events").glob("*.json")):
        properties = json.loads(path.read_text())["properties"]
        classes: dict[str, list[str]] = defaultdict(list)
        for name, spec in properties.items():
            classes[spec.get("x-pii", "none")].append(name)
        out[path.stem] = classes
    return out


def reference_compliance(events: Events, first: date, last: date) -> dict[tuple, dict]:
    """compliance.sql: rows stored per (event type, PII class its schema has), quarantined lines
    per reason, duplicates dropped (always a row), contract violations per (family, rule)."""
    rows = {}

    def add(section: str, item: str, count: int, detail: str | None = None) -> None:
        rows[(section, item)] = {
            "section": section,
            "item": item,
            "item_count": count,
            "detail": detail,
        }

    for event_type, classes in schema_pii_classes().items():
        stored = len(events.of(event_type, first, last))
        for pii_class, names in classes.items():
            add(
                "stored_rows",
                f"{event_type}/{pii_class}",
                stored,
                "fields: " + ", ".join(sorted(names)),
            )
    for reason, count in Counter(
        q["reason"] for q in events.side("quarantine", first, last)
    ).items():
        add("quarantined", reason, count)
    add(
        "duplicates",
        "exact_duplicate",
        sum(f["duplicates"] for f in events.side("ledger", first, last)),
    )
    violations = Counter(
        f"{v['family']}/{v['rule']}" for v in events.side("contracts", first, last)
    )
    for item, count in violations.items():
        add("contract_violations", item, count)
    return rows


# -- the lake --------------------------------------------------------------------------------------


def rid(name: str) -> str:
    """A request_id (a UUID v4, as the schemas require) named for the test's readers."""
    return str(uuid.UUID(bytes=hashlib.md5(name.encode()).digest(), version=4))


def ms(day: date, hh: int, mm: int, ss: int, millis: int = 0) -> int:
    midnight = datetime(day.year, day.month, day.day) - EPOCH
    return int(midnight.total_seconds()) * 1000 + ((hh * 60 + mm) * 60 + ss) * 1000 + millis


class Chains:
    """Hand-written valid events, landed on the dt of their own event date."""

    def __init__(self) -> None:
        self.docs: list[dict] = []

    def _add(self, event_type: str, ts: int, **fields: Any) -> None:
        event_id = str(uuid.UUID(int=len(self.docs) + 1, version=4))
        doc = {"event_id": event_id, "event_type": event_type, "schema_version": "1.0.0"}
        self.docs.append({**doc, "timestamp_ms": ts, **fields})

    def request(self, name: str, ts: int, user: str, surface: str, device: str, arm=None) -> None:
        experiment = {"experiment_id": arm[0], "bucket": arm[1]} if arm else {}
        self._add(
            "request",
            ts,
            request_id=rid(name),
            user_id=user,
            session_id=f"s-{user}",
            k=10,
            **experiment,
            region="eu-west",
            locale="en-GB",
            device_type=device,
            surface=surface,
        )

    def chain(
        self,
        name: str,
        user: str,
        ranking_ts: int,
        impression_ts: int,
        clicks: dict[int, tuple[str, int | None]],
        shown: int,
        surface: str,
        device: str,
        latency: float,
        arm=("exp-ranker-v2", "control"),
    ) -> None:
        """The ranking (items item-edge-<name>-1..10), ``shown`` impressions 100 ms apart, and a
        click (engagement, dwell) on the positions in ``clicks``."""
        items = [f"item-edge-{name}-{p}" for p in range(1, 11)]
        self._add(
            "ranking",
            ranking_ts,
            request_id=rid(name),
            user_id=user,
            latency_ms=latency,
            coverage=0.5,
            algorithm="two-tower-v1",
            alpha=0.0,
            items=[
                {"canonical_id": c, "position": p, "score": 1 - p / 100}
                for p, c in enumerate(items, 1)
            ],
            experiment_id=arm[0],
            bucket=arm[1],
        )
        for p in range(1, shown + 1):
            its = impression_ts + 100 * (p - 1)
            common = {"request_id": rid(name), "user_id": user, "session_id": f"s-{user}"}
            self._add(
                "impression",
                its,
                **common,
                canonical_id=items[p - 1],
                position=p,
                visible_ms=900,
                surface=surface,
                device_type=device,
            )
            if p in clicks:
                engagement, dwell = clicks[p]
                self._add(
                    "click",
                    its + 500,
                    **common,
                    canonical_id=items[p - 1],
                    engagement_type=engagement,
                    **({} if dwell is None else {"dwell_ms": dwell}),
                    device_type=device,
                )

    def error(self, ts: int, code: tuple[str, str, str], name: str | None, user: str | None):
        ids = {} if name is None else {"request_id": rid(name), "user_id": user}
        component, severity, error_code = code
        self._add(
            "error",
            ts,
            component=component,
            severity=severity,
            error_code=error_code,
            message="hand-written",
            **ids,
        )

    def orphan_click(self, ts: int) -> None:
        self._add(
            "click",
            ts,
            request_id=rid("no-such-request"),
            user_id="u-orphan",
            session_id="s-orphan",
            canonical_id="item-00001",
            engagement_type="click",
            dwell_ms=4321,
            device_type="web",
        )

    def land(self, root: Path) -> None:
        by_dt: dict[date, list[bytes]] = defaultdict(list)
        for doc in self.docs:
            dt = (EPOCH + timedelta(milliseconds=doc["timestamp_ms"])).date()
            by_dt[dt].append(json.dumps(doc, separators=(",", ":")).encode())
        for dt, lines in by_dt.items():
            folder = root / "landing" / f"dt={dt}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "zz-hand-written.jsonl").write_bytes(b"\n".join(lines) + b"\n")


TIMEOUT = ("ranker", "error", "TIMEOUT")
RATE_LIMITED = ("api", "warning", "RATE_LIMITED")


def boundary_chains() -> Chains:
    """Chains whose events straddle midnight (and the week boundaries), a request without an
    experiment, an orphan click, an error without a request. No request_id is sent twice."""
    ch = Chains()
    sun, mon = date(2025, 6, 1), date(2025, 6, 2)
    # A: requested on Sunday 23:59:59, seen and clicked on Monday: the week's first events.
    ch.request("a", ms(sun, 23, 59, 59), "u-edge-a", "home", "ios", ("exp-ranker-v2", "treatment"))
    ch.chain(
        "a",
        "u-edge-a",
        ms(sun, 23, 59, 59, 800),
        ms(mon, 0, 0, 0, 300),
        {1: ("save", None)},
        shown=2,
        surface="home",
        device="ios",
        latency=800.0,
        arm=("exp-ranker-v2", "treatment"),
    )
    ch.error(ms(mon, 0, 0, 0, 100), RATE_LIMITED, "a", "u-edge-a")
    # B: Wednesday 23:59:59.9 -> Thursday, mid-week.
    wed, thu = date(2025, 6, 4), date(2025, 6, 5)
    ch.request(
        "b", ms(wed, 23, 59, 59, 900), "u-edge-b", "pdp", "web", ("exp-diversity", "treatment")
    )
    ch.chain(
        "b",
        "u-edge-b",
        ms(thu, 0, 0, 0, 50),
        ms(thu, 0, 0, 0, 400),
        {2: ("purchase", 1234)},
        shown=3,
        surface="pdp",
        device="web",
        latency=150.5,
        arm=("exp-diversity", "treatment"),
    )
    # D: a request without an experiment (its own traffic row, not in the experiments rollup).
    ch.request("d", ms(thu, 12, 0, 0), "u-edge-d", "search", "other")
    ch.chain(
        "d",
        "u-edge-d",
        ms(thu, 12, 0, 0, 90),
        ms(thu, 12, 0, 1),
        {1: ("click", 777), 2: ("click", 999)},
        shown=2,
        surface="search",
        device="other",
        latency=90.0,
    )
    ch.error(ms(thu, 12, 0, 0, 50), TIMEOUT, "d", "u-edge-d")
    # G: the last second of week 1 -> week 2.
    sun2, mon2 = date(2025, 6, 8), date(2025, 6, 9)
    ch.request(
        "g",
        ms(sun2, 23, 59, 59, 500),
        "u-edge-g",
        "category",
        "android",
        ("exp-ranker-v2", "control"),
    )
    ch.chain(
        "g",
        "u-edge-g",
        ms(sun2, 23, 59, 59, 700),
        ms(mon2, 0, 0, 0, 200),
        {1: ("click", 5000)},
        shown=1,
        surface="category",
        device="android",
        latency=200.0,
    )
    # Sunday before: an hour with an error and an orphan click but no ranking.
    ch.error(ms(sun, 5, 0, 0), TIMEOUT, None, None)
    ch.orphan_click(ms(sun, 5, 30, 0))
    return ch


def hand_written_quarantined(events: Events) -> list[str]:
    """The hand-written lines the ingest rejected (there must be none: they are all valid)."""
    return [
        f"{q['landing_file']}:{q['line_no']} {q['reason']} {q['detail']}"
        for q in events.side("quarantine", JUNE[0], JUNE[-1])
        if q["landing_file"].endswith("hand-written.jsonl")
    ]


@dataclass
class Built:
    root: Path
    lake: Lake
    events: Events

    def rollup(self, name: str, start: date) -> list[dict]:
        model = MODELS_BY_NAME[name]
        key = {"day": "event_date", "week": "week_start", "month": "month_start"}[model.grain]
        path = self.root / f"rollups/{name}/{key}={start}/part-00000.parquet"
        return pq.read_table(path).to_pylist()


def ingest(lake: Lake, day: date) -> None:
    ingest_partition(lake, day, PiiKey(pii.DEV_KEY), IngestSettings())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("exact") / "lake"
    config = SampleConfig(start=WEEK_1, days=14, requests_per_day=200, error_rate=0.05, seed=2025)
    generate(config, str(root))
    boundary_chains().land(root)
    lake = Lake(str(root))
    for day in JUNE:
        ingest(lake, day)
    for day in CONTRACT_DAYS:
        run_contracts(lake, day, Thresholds(), data_docs=False)
    for day in JUNE:  # weeks and the month are merged from every day's traffic rollups
        build_rollup(lake, MODELS_BY_NAME["traffic_daily"], day)
        build_rollup(lake, MODELS_BY_NAME["traffic_parts"], day)
    for day in DAILY_DAYS:
        build_rollup(lake, MODELS_BY_NAME["errors_daily"], day)
    for day in HOURLY_DAYS:
        build_rollup(lake, MODELS_BY_NAME["traffic_hourly"], day)
    for week in (WEEK_1, WEEK_2):  # in order: week 2's change reads week 1's file
        build_rollup(lake, MODELS_BY_NAME["traffic_weekly"], week)
        build_rollup(lake, MODELS_BY_NAME["experiments_weekly"], week)
    build_rollup(lake, MODELS_BY_NAME["traffic_monthly"], MONTH)
    build_rollup(lake, MODELS_BY_NAME["compliance_monthly"], MONTH)
    return Built(root, lake, Events(root))


# -- the tests -------------------------------------------------------------------------------------


def test_the_lake_holds_the_cases_worth_checking(built: Built):
    """Guard the fixture: the edge cases the other tests rely on are really in the lake."""
    ev = built.events
    assert hand_written_quarantined(ev) == []

    def request_ids(event_type: str, day: date) -> Counter:
        return Counter(e["request_id"] for e in ev.of(event_type, day))

    sunday, monday, wednesday, thursday = JUNE[0], WEEK_1, JUNE[3], JUNE[4]
    # Events whose request is on the eve: found only through the previous day's requests.
    assert rid("a") in request_ids("request", sunday) and rid("a") not in request_ids(
        "request", monday
    )
    assert request_ids("impression", monday)[rid("a")] == 2
    assert request_ids("error", monday)[rid("a")] == 1
    assert rid("b") in request_ids("request", wednesday)
    assert request_ids("ranking", thursday)[rid("b")] == 1
    assert request_ids("click", WEEK_2)[rid("g")] == 1
    assert first_request_dims(ev, monday, monday)[rid("a")] == (
        "exp-ranker-v2",
        "treatment",
        "home",
        "ios",
    )
    # Rows of their own: a request without an experiment, events whose request is unknown.
    assert (
        reference_traffic(ev, thursday, thursday)[(None, None, "search", "other", False)]["clicks"]
        == 2
    )
    assert reference_traffic(ev, sunday, sunday)[(*UNKNOWN_REQUEST, False)]["clicks"] == 1
    assert reference_traffic(ev, monday, monday)[(*UNKNOWN_REQUEST, False)]["errors"] >= 1
    assert reference_traffic(ev, JUNE[15], JUNE[15]).keys() == {ALL_TRAFFIC}  # a day of nothing
    assert any(r["latency_p95_ms"] is None for r in reference_hourly(ev, sunday).values())
    # Error codes tied on their count share a rank.
    ranks = [
        Counter(r["rank_by_count"] for r in reference_errors(ev, day).values())
        for day in DAILY_DAYS
    ]
    assert any(max(r.values()) > 1 for r in ranks if r) and any(len(r) > 2 for r in ranks)
    compliance = reference_compliance(ev, MONTH, JUNE[-1])
    sections = Counter(section for section, _ in compliance)
    assert sections["quarantined"] >= 3 and sections["contract_violations"] >= 1
    assert compliance[("duplicates", "exact_duplicate")]["item_count"] > 0
    assert len(reference_traffic(ev, WEEK_1, WEEK_1 + timedelta(days=6))) > 40


def _traffic_partitions() -> list[tuple[str, date]]:
    return [
        *(("traffic_daily", day) for day in JUNE),
        ("traffic_weekly", WEEK_1),
        ("traffic_weekly", WEEK_2),
        ("traffic_monthly", MONTH),
    ]


def test_unattributed_events_sit_in_one_flagged_row_with_null_ratios(built: Built):
    """Sunday's orphan click and request-less error: one row, is_unattributed, dimensions null,
    no requests or impressions, its ratios null (not inf)."""
    sunday = JUNE[0]
    [row] = [r for r in built.rollup("traffic_daily", sunday) if r["is_unattributed"]]
    assert [row[k] for k in TRAFFIC_KEYS] == [None, None, None, None, False]
    assert (row["requests"], row["impressions"], row["clicks"], row["errors"]) == (0, 0, 1, 1)
    assert (row["ctr"], row["error_rate"], row["impressions_per_request"]) == (None, None, None)
    flagged = 0
    for name, start in _traffic_partitions():
        rows = built.rollup(name, start)
        marked = [r for r in rows if r["is_unattributed"]]
        assert len(marked) <= 1, (name, start)
        for r in marked:
            assert not r["is_all_traffic"] and r["requests"] == 0, (name, start)
            assert all(r[k] is None for k in TRAFFIC_KEYS[:4]), (name, start)
        assert all(not r["is_unattributed"] for r in rows if r["is_all_traffic"])
        flagged += len(marked)
    assert flagged >= 3  # Sunday, Monday's request-less errors, and the week and month


def test_no_rollup_holds_inf_or_nan(built: Built):
    """Every floating-point value of every rollup file is finite or null: a ratio with a zero
    denominator is null, never inf or NaN."""
    checked = 0
    files = sorted((built.root / "rollups").rglob("*.parquet"))
    assert len(files) > 40
    for path in files:
        table = pq.read_table(path)
        for field_ in table.schema:
            if not pa.types.is_floating(field_.type):
                continue
            values = [v for v in table[field_.name].to_pylist() if v is not None]
            bad = [v for v in values if not math.isfinite(v)]
            assert bad == [], f"{path.relative_to(built.root)}: {field_.name} holds {bad[:3]}"
            checked += len(values)
    assert checked > 10_000


def test_the_readme_ratio_idiom_is_finite_and_exact(built: Built):
    """README's idiom: CTR per surface and day over the rows of known dimensions, summed parts
    divided once. It equals clicks / impressions counted here from the events whose request was
    found; the naive sum(clicks) / sum(impressions) over every per-dimension row is the inf an
    analyst fell into (Sunday: the orphan click, a null surface, no impressions)."""
    glob = str(built.root / "rollups/traffic_daily/*/*.parquet")
    con = duckdb.connect()
    rollup = f"read_parquet('{glob}', hive_partitioning = true)"
    idiom = con.sql(
        f"""
        select event_date, surface, sum(clicks) / nullif(sum(impressions), 0) as ctr
        from {rollup}
        where not is_all_traffic and not is_unattributed
        group by event_date, surface
        """
    ).fetchall()
    naive = con.sql(
        f"""
        select event_date, surface, sum(clicks) / sum(impressions) as ctr
        from {rollup}
        where not is_all_traffic
        group by event_date, surface
        """
    ).fetchall()
    assert (JUNE[0], None, math.inf) in naive  # the trap is real
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for day in JUNE:
        dims = first_request_dims(built.events, day, day)
        for event_type, slot in (("click", 0), ("impression", 1)):
            for e in built.events.of(event_type, day):
                if e["request_id"] in dims:
                    counts[(day, dims[e["request_id"]][2])][slot] += 1
    got = {(day, surface): ctr for day, surface, ctr in idiom}
    assert counts.keys() <= got.keys() and len(got) > 30
    for key, ctr in got.items():
        want = ratio(*counts.get(key, [0, 0]))  # a surface without impressions: null
        assert ctr is None or math.isfinite(ctr), key
        assert same(ctr, want), (key, ctr, want)


def test_only_the_unknown_request_row_can_lack_a_surface():
    """is_unattributed is "not all traffic, no surface": it holds while every request has a
    surface and a device type, as every schema version of request requires."""
    for path in sorted((PROJECT_ROOT / "schemas" / "events" / "request").glob("*.json")):
        required = json.loads(path.read_text())["required"]
        assert {"surface", "device_type"} <= set(required), path.name


@pytest.mark.parametrize("day", DAILY_DAYS, ids=str)
def test_traffic_daily(built: Built, day: date):
    expected = reference_traffic(built.events, day, day)
    assert_exact(built.rollup("traffic_daily", day), expected, traffic_key)


@pytest.mark.parametrize("day", HOURLY_DAYS, ids=str)
def test_traffic_hourly(built: Built, day: date):
    expected = reference_hourly(built.events, day)
    assert_exact(built.rollup("traffic_hourly", day), expected, lambda r: (r["hour_start"],))


@pytest.mark.parametrize("day", DAILY_DAYS, ids=str)
def test_errors_daily(built: Built, day: date):
    expected = reference_errors(built.events, day)
    key = lambda r: (r["component"], r["severity"], r["error_code"])  # noqa: E731
    assert_exact(built.rollup("errors_daily", day), expected, key)


@pytest.mark.parametrize("week", [WEEK_1, WEEK_2], ids=str)
def test_traffic_weekly(built: Built, week: date):
    expected = reference_traffic(built.events, week, week + timedelta(days=6))
    assert_exact(built.rollup("traffic_weekly", week), expected, traffic_key, is_change)


def test_traffic_monthly(built: Built):
    expected = reference_traffic(built.events, MONTH, JUNE[-1])
    assert_exact(built.rollup("traffic_monthly", MONTH), expected, traffic_key, is_change)


def test_a_change_column_per_metric_null_without_a_previous_period(built: Built):
    for rows in (built.rollup("traffic_weekly", WEEK_1), built.rollup("traffic_monthly", MONTH)):
        assert {c for c in rows[0] if is_change(c)} == {f"{m}_change" for m in TRAFFIC_METRICS}
        assert all(row[f"{m}_change"] is None for row in rows for m in TRAFFIC_METRICS)


def test_weekly_change_against_the_previous_week(built: Built):
    """change = (this - previous) / previous, from the previous week's rollup row with the same
    dimensions; null without such a row, or where either value is null or the previous is 0."""
    previous = {traffic_key(r): r for r in built.rollup("traffic_weekly", WEEK_1)}
    checked = Counter()
    for row in built.rollup("traffic_weekly", WEEK_2):
        before = previous.get(traffic_key(row))
        for m in TRAFFIC_METRICS:
            now, then = row[m], None if before is None else before[m]
            want = None if now is None or then in (None, 0) else (now - then) / then
            assert same(row[f"{m}_change"], want), (traffic_key(row), m, row[f"{m}_change"], want)
            checked[want is None] += 1
    assert checked[False] > 100 and checked[True] > 0


@pytest.mark.parametrize("week", [WEEK_1, WEEK_2], ids=str)
def test_experiments_weekly(built: Built, week: date):
    rows = built.rollup("experiments_weekly", week)
    expected = reference_experiments(built.events, week, week + timedelta(days=6))
    statistics = {c for c in rows[0] if c not in EXPERIMENT_SQL_COLUMNS} - {
        "experiment_id",
        "bucket",
    }
    assert_exact(
        rows, expected, lambda r: (r["experiment_id"], r["bucket"]), statistics.__contains__
    )
    for row in rows:
        assert same(row["ctr"], ratio(row["clicks"], row["impressions"])), row


def test_compliance_monthly(built: Built):
    expected = reference_compliance(built.events, MONTH, JUNE[-1])
    assert_exact(
        built.rollup("compliance_monthly", MONTH), expected, lambda r: (r["section"], r["item"])
    )


def test_the_comparison_catches_a_perturbed_value(built: Built):
    rows = built.rollup("traffic_daily", WEEK_1)
    expected = reference_traffic(built.events, WEEK_1, WEEK_1)
    assert discrepancies(rows, expected, traffic_key) == []
    all_traffic = next(i for i, r in enumerate(rows) if r["is_all_traffic"])

    def perturbed(change: Callable[[list[dict]], None]) -> list[str]:
        copy = [dict(r) for r in rows]
        change(copy)
        return discrepancies(copy, expected, traffic_key)

    def setter(column: str, value: Callable[[Any], Any]) -> Callable[[list[dict]], None]:
        return lambda rs: rs[all_traffic].__setitem__(column, value(rs[all_traffic][column]))

    caught = [
        setter("clicks", lambda v: v + 1),
        setter("latency_p95_ms", lambda v: v * (1 + 1e-8)),
        setter("ctr", lambda _v: None),
        setter("requests", float),  # an int column must hold an int
        setter("period_end", lambda v: v + timedelta(days=1)),
        lambda rs: rs.pop(),  # a row missing
        lambda rs: rs.append(dict(rs[0])),  # a row twice
        lambda rs: rs.append({**rs[all_traffic], "is_all_traffic": False, "surface": "tv"}),
        lambda rs: rs[0].pop("distinct_sessions"),  # a column missing
        lambda rs: rs[0].__setitem__("surprise", 1),  # a column not expected
    ]
    for change in caught:
        assert perturbed(change), "a perturbed rollup passed the comparison"
    within_tolerance = setter("latency_p95_ms", lambda v: v * (1 + 1e-12))
    assert perturbed(within_tolerance) == []


# -- a request_id sent twice -----------------------------------------------------------------------


def retry_chains() -> Chains:
    """Wednesday: a request sent twice under one request_id with different dimensions (a client
    retry); Thursday: the same, where the first request has no experiment."""
    ch = Chains()
    wed, thu = date(2025, 6, 4), date(2025, 6, 5)
    ch.request("c", ms(wed, 10, 0, 0), "u-edge-c", "search", "web", ("exp-diversity", "control"))
    ch.request("c", ms(wed, 10, 0, 7), "u-edge-c", "pdp", "android", ("exp-diversity", "treatment"))
    ch.chain(
        "c",
        "u-edge-c",
        ms(wed, 10, 0, 0, 80),
        ms(wed, 10, 0, 1),
        {2: ("click", 3000)},
        shown=3,
        surface="search",
        device="web",
        latency=80.0,
        arm=("exp-diversity", "control"),
    )
    ch.request("e", ms(thu, 11, 0, 0), "u-edge-e", "category", "other")
    ch.request("e", ms(thu, 11, 0, 3), "u-edge-e", "home", "web", ("exp-ranker-v2", "control"))
    ch.chain(
        "e",
        "u-edge-e",
        ms(thu, 11, 0, 0, 60),
        ms(thu, 11, 0, 1),
        {},
        shown=2,
        surface="category",
        device="other",
        latency=60.0,
    )
    return ch


@pytest.fixture(scope="module")
def retried(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("retried") / "lake"
    retry_chains().land(root)
    lake = Lake(str(root))
    for day in days(WEEK_1, WEEK_1 + timedelta(days=6)):
        ingest(lake, day)
    for day in (date(2025, 6, 4), date(2025, 6, 5)):
        build_rollup(lake, MODELS_BY_NAME["traffic_daily"], day)
    build_rollup(lake, MODELS_BY_NAME["experiments_weekly"], WEEK_1)
    return Built(root, lake, Events(root))


def test_a_retried_request_counts_for_the_first_requests_dimensions(retried: Built):
    assert hand_written_quarantined(retried.events) == []
    wednesday = date(2025, 6, 4)
    expected = reference_traffic(retried.events, wednesday, wednesday)
    row = expected[("exp-diversity", "control", "search", "web", False)]
    assert (row["requests"], row["distinct_users"], row["impressions"]) == (2, 1, 3)
    assert_exact(retried.rollup("traffic_daily", wednesday), expected, traffic_key)


def test_a_retried_request_keeps_the_first_requests_null_experiment(retried: Built):
    thursday = date(2025, 6, 5)
    expected = reference_traffic(retried.events, thursday, thursday)
    assert expected[(None, None, "category", "other", False)]["impressions"] == 2
    assert_exact(retried.rollup("traffic_daily", thursday), expected, traffic_key)


def test_a_retried_request_counts_its_impressions_once_in_the_experiment(retried: Built):
    rows = retried.rollup("experiments_weekly", WEEK_1)
    diversity = [r for r in rows if r["experiment_id"] == "exp-diversity"]
    assert sum(r["impressions"] for r in diversity) == 3
    assert sum(r["clicks"] for r in diversity) == 1
