"""The faults planted in the sample: a line written late, twice, truncated, against its schema,
with an unknown type or version, or out of the ingest's window; each counted where the ingest
will put it (``expectations.py``)."""

from __future__ import annotations

import random
from bisect import bisect_left
from typing import Any

import orjson

from pipelines.lib.sample.config import (
    CLICK,
    DAY_MS,
    ERROR,
    FAULT_BANDS,
    IMPRESSION,
    RANKING,
    REQUEST,
    UNKNOWN_EVENT_TYPE,
    UNKNOWN_SCHEMA_VERSION,
    SampleConfig,
    uuid4_from_bits,
)
from pipelines.lib.sample.expectations import Expectations

_DUMPS = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE


def _compact(line: bytes) -> bytes:
    """An exact-size copy: orjson's result keeps a >= 4 KiB allocation, too much to hold on to."""
    return bytes(memoryview(line))


class FaultInjector:
    """Draws each event's fault band (``SampleConfig.band_rates``) and writes its faulty copy.

    ``buffers`` holds the lines bound for another landing dt than the one being written, by dt.
    """

    def __init__(
        self,
        cfg: SampleConfig,
        rng: random.Random,
        expected: Expectations,
        buffers: dict[int, list[tuple[int, bytes]]],
    ) -> None:
        self.rng = rng
        self.expected = expected
        self.buffers = buffers
        cuts, acc = [], 0.0
        for rate in cfg.band_rates():
            acc += rate
            cuts.append(acc)
        self.cuts = cuts
        # A uniform draw at or above this is an event without a fault.
        self.total = acc

    def inject(
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
        """Write event ``d`` (``line``, written at ``ts`` on event day ``day``; ``u`` its draw,
        below ``total``) with its band's fault: lines for dt ``home`` go to ``out``, others to
        ``buffers``; a copy within dt ``home`` is written no later than ``cap``."""
        rng = self.rng
        rnd = rng.random
        band = FAULT_BANDS[bisect_left(self.cuts, u)]
        if band == "late" and not early:
            dest = day + (1 if rnd() < 0.7 else 2)
            self.buffers[dest].append((ts, _compact(line)))
            self.expected.count(dest, day, t)
            return
        # The original, as usual.
        out.append((ts, line))
        self.expected.count(home, day, t)
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
            self.expected.count(dest, day, band)
            return
        c = dict(d)
        c["event_id"] = uuid4_from_bits(rng.getrandbits(128))
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
        got = self.expected.count(dest, event_day, band)
        assert got == band, (band, got)

    def conflicting(self, d: dict[str, Any], t: int) -> dict[str, Any]:
        c = dict(d)
        rnd = self.rng.random
        if t == REQUEST:
            c["k"] = d["k"] + 10 if d["k"] <= 990 else d["k"] - 10
        elif t == RANKING:
            c["latency_ms"] = round(d["latency_ms"] + 1 + rnd() * 50, 1)
        elif t == IMPRESSION:
            c["visible_ms"] = d["visible_ms"] + 1 + int(rnd() * 1000)
        elif t == CLICK:
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
            REQUEST: ("user_id", "k", "region", "surface"),
            RANKING: ("items", "algorithm", "request_id"),
            IMPRESSION: ("canonical_id", "position", "session_id"),
            CLICK: ("engagement_type", "canonical_id", "session_id"),
            ERROR: ("component", "severity", "error_code"),
        }[t]
        options += [("-", name) for name in missing]
        if t == REQUEST:
            options += [("k", 0), ("k", 5000), ("device_type", "toaster")]
        elif t == RANKING:
            options += [("latency_ms", -12.5), ("coverage", 1.7), ("items", []), ("pos0", 0)]
        elif t == IMPRESSION:
            options += [("position", 0), ("visible_ms", -1), ("device_type", "toaster")]
        elif t == CLICK:
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
