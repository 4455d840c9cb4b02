"""The sample generator: determinism, the event contract, the faults it claims and its manifest.

The contract checker below is deliberately self-contained (no JSON Schema): it re-derives, from the
files alone, everything the manifest promises, so the manifest can be trusted by ingest tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest
from tqdm import tqdm

from pipelines.lib.sample.config import (
    DAY_MS,
    EVENT_TYPES,
    MANIFEST_NAME,
    QUARANTINE_REASONS,
    SampleConfig,
    uuid4_from_bits,
)
from pipelines.lib.sample.generator import generate, load_manifest, progress_bar

REPO = Path(__file__).resolve().parents[2]
START = date(2025, 6, 2)

FAULTY = SampleConfig(
    start=START,
    days=3,
    seed=11,
    users=300,
    items=400,
    requests_per_day=300,
    error_rate=0.15,
    late_share=0.05,
    early_share=0.05,
    malformed_json_rate=0.01,
    duplicate_rate=0.02,
    conflicting_duplicate_rate=0.01,
    schema_violation_rate=0.01,
    unknown_event_type_rate=0.01,
    unknown_schema_version_rate=0.01,
    late_arrival_rate=0.01,
    future_timestamp_rate=0.01,
    orphan_click_rate=0.05,
)

# --- a tiny, independent contract checker -----------------------------------------------------

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ERROR_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{2,63}$")
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
DEVICES = {"ios", "android", "web", "other"}
ENGAGEMENTS = {"click", "add_to_cart", "save", "share", "purchase"}
SEVERITIES = {"info", "warning", "error", "critical"}


def _int(v: Any) -> bool:
    return type(v) is int


def _num(v: Any) -> bool:
    return type(v) in (int, float)


def _text(v: Any) -> bool:
    return type(v) is str and len(v) > 0


def _uuid(v: Any) -> bool:
    return type(v) is str and UUID4_RE.match(v) is not None


def _scalar(v: Any) -> bool:
    return type(v) in (str, int, float, bool)


def _filters(v: Any) -> bool:
    return type(v) is dict and all(
        _scalar(x) or (type(x) is list and all(map(_scalar, x))) for x in v.values()
    )


def _items(v: Any) -> bool:
    if type(v) is not list or not 1 <= len(v) <= 1000:
        return False
    for it in v:
        if type(it) is not dict or set(it) != {"canonical_id", "position", "score"}:
            return False
        if not (_text(it["canonical_id"]) and _int(it["position"]) and it["position"] >= 1):
            return False
        if not _num(it["score"]):
            return False
    return len({it["position"] for it in v}) == len(v)


COMMON = {
    "event_id": (True, _uuid),
    "event_type": (True, lambda v: v in EVENT_TYPES),
    "schema_version": (True, lambda v: v == "1.0.0"),
    "timestamp_ms": (True, lambda v: _int(v) and v >= 0),
}
IDS = {"request_id": (True, _uuid), "user_id": (True, _text)}
CONTRACT: dict[str, dict[str, tuple[bool, Any]]] = {
    "request": {
        **COMMON,
        **IDS,
        "session_id": (False, _text),
        "k": (True, lambda v: _int(v) and 1 <= v <= 1000),
        "filters": (False, _filters),
        "experiment_id": (False, _text),
        "bucket": (False, _text),
        "region": (True, _text),
        "locale": (True, lambda v: type(v) is str and LOCALE_RE.match(v) is not None),
        "device_type": (True, lambda v: v in DEVICES),
        "surface": (True, _text),
    },
    "ranking": {
        **COMMON,
        **IDS,
        "latency_ms": (True, lambda v: _num(v) and v >= 0),
        "coverage": (True, lambda v: _num(v) and 0 <= v <= 1),
        "algorithm": (True, _text),
        "alpha": (True, _num),
        "items": (True, _items),
        "experiment_id": (True, _text),
        "bucket": (True, _text),
    },
    "impression": {
        **COMMON,
        **IDS,
        "session_id": (True, _text),
        "canonical_id": (True, _text),
        "position": (True, lambda v: _int(v) and v >= 1),
        "visible_ms": (True, lambda v: _int(v) and v >= 0),
        "surface": (True, _text),
        "device_type": (True, lambda v: v in DEVICES),
    },
    "click": {
        **COMMON,
        **IDS,
        "session_id": (True, _text),
        "canonical_id": (True, _text),
        "engagement_type": (True, lambda v: v in ENGAGEMENTS),
        "dwell_ms": (False, lambda v: _int(v) and v >= 0),
        "device_type": (True, lambda v: v in DEVICES),
    },
    "error": {
        **COMMON,
        "component": (True, _text),
        "severity": (True, lambda v: v in SEVERITIES),
        "error_code": (True, lambda v: type(v) is str and ERROR_CODE_RE.match(v) is not None),
        "message": (True, lambda v: type(v) is str),
        "request_id": (False, _uuid),
        "user_id": (False, _text),
    },
}


def contract_errors(event: dict[str, Any]) -> list[str]:
    spec = CONTRACT[event["event_type"]]
    errors = [f"unknown field {name}" for name in event if name not in spec]
    for name, (required, check) in spec.items():
        if name not in event:
            if required:
                errors.append(f"missing {name}")
        elif not check(event[name]):
            errors.append(f"bad {name}: {event[name]!r}")
    if ("experiment_id" in event) != ("bucket" in event):
        errors.append("experiment_id and bucket go together")
    return errors


# --- reading the landing zone back ------------------------------------------------------------


def landing_files(root: Path) -> list[Path]:
    """In (dt, file name) order: the order the ingest deduplicates in."""
    return sorted((root / "landing").glob("dt=*/part-*"), key=lambda p: (p.parent.name, p.name))


def read_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    assert data.endswith(b"\n") or not data
    return data.split(b"\n")[:-1]


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def classify(root: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Recount the manifest's partitions from the files with the ingest's ownership rule.

    Returns (partitions, lines) where ``lines[category]`` lists (dt, file, line no, object|raw).
    """
    parts: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"rows": dict.fromkeys(EVENT_TYPES, 0), "duplicates": 0, "quarantined": Counter()}
    )
    lines: dict[str, list[Any]] = defaultdict(list)
    seen: dict[str, dict[str, bytes]] = defaultdict(dict)
    for path in landing_files(root):
        landing = date.fromisoformat(path.parent.name.removeprefix("dt="))
        for no, raw in enumerate(read_lines(path)):
            where = (landing, path.name, no)
            try:
                obj = json.loads(raw)
            except ValueError:
                parts[landing.isoformat()]["quarantined"]["malformed_json"] += 1
                lines["malformed_json"].append((*where, raw))
                continue
            assert isinstance(obj, dict) and _int(obj.get("timestamp_ms")), raw
            event_date = date(1970, 1, 1) + timedelta(days=obj["timestamp_ms"] // DAY_MS)
            if event_date < landing - timedelta(days=2):
                owner, reason = landing, "late_arrival"
            elif event_date > landing + timedelta(days=1):
                owner, reason = landing, "future_timestamp"
            elif obj.get("event_type") not in EVENT_TYPES:
                owner, reason = event_date, "unknown_event_type"
            elif obj.get("schema_version") != "1.0.0":
                owner, reason = event_date, "unknown_schema_version"
            elif contract_errors(obj):
                owner, reason = event_date, "schema_violation"
            else:
                owner, reason = event_date, None
            part = parts[owner.isoformat()]
            if reason is None:
                first = seen[owner.isoformat()].setdefault(obj["event_id"], raw)
                if first is raw:
                    part["rows"][obj["event_type"]] += 1
                    reason = "row"
                elif first == raw:
                    part["duplicates"] += 1
                    reason = "duplicate"
                else:
                    reason = "conflicting_duplicate"
            if reason not in ("row", "duplicate"):
                part["quarantined"][reason] += 1
            lines[reason].append((*where, obj))
    for part in parts.values():
        part["quarantined"] = {
            r: part["quarantined"][r] for r in QUARANTINE_REASONS if part["quarantined"][r]
        }
    return dict(parts), lines


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("faulty")
    return root, generate(FAULTY, str(root))


@pytest.fixture(scope="module")
def recount(faulty: tuple[Path, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    return classify(faulty[0])


# --- tests ------------------------------------------------------------------------------------


def test_uuid_helper_matches_stdlib() -> None:
    import random

    rng = random.Random(3)
    for _ in range(2000):
        bits = rng.getrandbits(128)
        assert uuid4_from_bits(bits) == str(uuid.UUID(int=bits, version=4))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = SampleConfig(start=START, days=2, requests_per_day=150, users=100, items=300)
    digests = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(SampleConfig(**{**config.to_dict(), "seed": seed}), str(tmp_path / name))
        digests.append(tree_digest(tmp_path / name))
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_manifest_matches_an_independent_recount(
    faulty: tuple[Path, dict[str, Any]], recount: tuple[dict[str, Any], dict[str, list[Any]]]
) -> None:
    root, manifest = faulty
    parts, _ = recount
    assert manifest["partitions"] == parts
    assert json.loads((root / "landing" / MANIFEST_NAME).read_text()) == manifest
    assert load_manifest(str(root)) == manifest
    assert manifest["config"] == FAULTY.to_dict()
    assert SampleConfig.from_dict(manifest["config"]) == FAULTY

    on_disk = {
        str(p.relative_to(root)).replace(os.sep, "/"): {"lines": len(read_lines(p))}
        for p in landing_files(root)
    }
    assert manifest["files"] == on_disk
    total_lines = sum(f["lines"] for f in manifest["files"].values())
    total_counted = sum(
        sum(p["rows"].values()) + p["duplicates"] + sum(p["quarantined"].values())
        for p in manifest["partitions"].values()
    )
    assert total_lines == total_counted


def test_every_fault_and_arrival_kind_is_present(
    faulty: tuple[Path, dict[str, Any]], recount: tuple[dict[str, Any], dict[str, list[Any]]]
) -> None:
    root, manifest = faulty
    _, lines = recount
    for reason in QUARANTINE_REASONS:
        assert lines[reason], reason
    assert lines["duplicate"]
    assert sum(manifest["orphan_clicks"].values()) > 0
    # Window dates hold the rows; early lines land the day before, late ones after.
    window = {(START + timedelta(days=i)).isoformat() for i in range(FAULTY.days)}
    assert {d for d, p in manifest["partitions"].items() if sum(p["rows"].values())} == window
    offsets = Counter(
        (date(1970, 1, 1) + timedelta(days=obj["timestamp_ms"] // DAY_MS) - dt).days
        for dt, _, _, obj in lines["row"]
    )
    assert set(offsets) == {-2, -1, 0, 1}
    assert (root / "landing" / f"dt={START - timedelta(days=1)}").is_dir()


def test_valid_lines_follow_the_contract_and_faults_are_what_they_claim(
    recount: tuple[dict[str, Any], dict[str, list[Any]]],
) -> None:
    _, lines = recount
    for _, _, _, raw in lines["malformed_json"]:
        assert raw.startswith(b"{")
        with pytest.raises(ValueError):
            json.loads(raw)
    for _, _, _, obj in lines["schema_violation"]:
        assert len(contract_errors(obj)) == 1, contract_errors(obj)
    assert {obj["event_type"] for *_, obj in lines["unknown_event_type"]} == {"pageview"}
    assert {obj["schema_version"] for *_, obj in lines["unknown_schema_version"]} == {"9.9.9"}
    rows = {obj["event_id"]: obj for *_, obj in lines["row"]}
    for *_, obj in lines["conflicting_duplicate"]:
        original = rows[obj["event_id"]]
        assert obj != original and not contract_errors(obj)
        assert set(obj) - {"dwell_ms"} == set(original) - {"dwell_ms"}
    for *_, obj in lines["duplicate"]:
        assert rows[obj["event_id"]] == obj


def test_request_chains_are_consistent(
    recount: tuple[dict[str, Any], dict[str, list[Any]]],
) -> None:
    _, lines = recount
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for *_, obj in lines["row"]:
        by_type[obj["event_type"]].append(obj)
    requests = {r["request_id"]: r for r in by_type["request"]}
    rankings = {r["request_id"]: r for r in by_type["ranking"]}
    assert len(requests) == len(by_type["request"]) == len(rankings)
    for rid, req in requests.items():
        rank = rankings[rid]
        assert req["experiment_id"] == rank["experiment_id"] and req["bucket"] == rank["bucket"]
        assert req["timestamp_ms"] <= rank["timestamp_ms"]
        assert len(rank["items"]) == req["k"] in (10, 20, 50)
        assert [it["position"] for it in rank["items"]] == list(range(1, req["k"] + 1))
    shown: dict[tuple[str, str], dict[str, Any]] = {}
    for imp in by_type["impression"]:
        req, rank = requests[imp["request_id"]], rankings[imp["request_id"]]
        assert imp["timestamp_ms"] >= rank["timestamp_ms"]
        assert imp["user_id"] == req["user_id"] and imp["session_id"].startswith("s-")
        assert rank["items"][imp["position"] - 1]["canonical_id"] == imp["canonical_id"]
        assert 1 <= imp["position"] <= 8
        shown[imp["request_id"], imp["canonical_id"]] = imp
    orphans = 0
    for click in by_type["click"]:
        if click["request_id"] not in requests:
            orphans += 1
            continue
        imp = shown[click["request_id"], click["canonical_id"]]
        assert click["timestamp_ms"] >= imp["timestamp_ms"]
        assert click["session_id"] == imp["session_id"]
    assert orphans == sum(faulty_manifest_orphans(lines).values())
    assert re.fullmatch(r"u-\d{6}", by_type["request"][0]["user_id"])
    assert re.fullmatch(r"item-\d{5}", by_type["impression"][0]["canonical_id"])
    ctr = len(by_type["click"]) / len(by_type["impression"])
    assert 0.03 < ctr < 0.07


def faulty_manifest_orphans(lines: dict[str, list[Any]]) -> Counter[str]:
    requests = {obj["request_id"] for *_, obj in lines["row"] if obj["event_type"] == "request"}
    return Counter(
        (date(1970, 1, 1) + timedelta(days=obj["timestamp_ms"] // DAY_MS)).isoformat()
        for *_, obj in lines["row"]
        if obj["event_type"] == "click" and obj["request_id"] not in requests
    )


def test_orphan_clicks_per_partition(
    faulty: tuple[Path, dict[str, Any]], recount: tuple[dict[str, Any], dict[str, list[Any]]]
) -> None:
    assert faulty[1]["orphan_clicks"] == dict(faulty_manifest_orphans(recount[1]))


def test_files_are_in_event_time_order_apart_from_faults(
    recount: tuple[dict[str, Any], dict[str, list[Any]]],
) -> None:
    _, lines = recount
    per_file: dict[tuple[date, str], list[tuple[int, int]]] = defaultdict(list)
    for dt, name, no, obj in lines["row"]:
        per_file[dt, name].append((no, obj["timestamp_ms"]))
    for stamps in per_file.values():
        ordered = [ts for _, ts in sorted(stamps)]
        assert ordered == sorted(ordered)


def test_error_messages_carry_some_pii(
    recount: tuple[dict[str, Any], dict[str, list[Any]]],
) -> None:
    messages = [obj["message"] for *_, obj in recount[1]["row"] if obj["event_type"] == "error"]
    pii = re.compile(r"@example\.|\+44 20 7946 \d{4}|\b\d{1,3}(\.\d{1,3}){3}\b")
    share = sum(bool(pii.search(m)) for m in messages) / len(messages)
    assert len(messages) > 100 and 0.15 < share < 0.45
    assert any(
        "request_id" not in obj for *_, obj in recount[1]["row"] if obj["event_type"] == "error"
    )


def test_layout_gzip_and_line_endings(faulty: tuple[Path, dict[str, Any]]) -> None:
    root, _ = faulty
    files = landing_files(root)
    assert files
    for path in files:
        index = int(path.name.split(".")[0].removeprefix("part-"))
        data = path.read_bytes()
        if index % 2:
            assert path.name.endswith(".jsonl.gz")
            assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
            data = gzip.decompress(data)
        else:
            assert path.name.endswith(".jsonl")
        assert data.endswith(b"\n") and b"\r" not in data
        data.decode("ascii")


def test_fsspec_url_root_and_clean(tmp_path: Path) -> None:
    config = SampleConfig(start=START, days=1, requests_per_day=50, users=20, items=100)
    url = "memory://sample-test/lake"
    fs = fsspec.filesystem("memory")
    try:
        fs.pipe("/sample-test/lake/landing/dt=2020-01-01/part-00009.jsonl", b"stale\n")
        manifest = generate(config, url)
        written = sorted(p.removeprefix("/sample-test/lake/") for p in fs.find("/sample-test/lake"))
        assert written == sorted([*manifest["files"], f"landing/{MANIFEST_NAME}"])
        assert not fs.exists("/sample-test/lake/landing/dt=2020-01-01/part-00009.jsonl")
        generate(config, str(tmp_path))  # a local root gets the very same bytes
        for rel in manifest["files"]:
            assert fs.cat(f"/sample-test/lake/{rel}") == (tmp_path / rel).read_bytes()
    finally:
        fs.rm("/sample-test", recursive=True)


def test_config_helpers_and_validation() -> None:
    config = SampleConfig()
    assert config.valid_events_per_request() == pytest.approx(10.41)
    assert 10.5 < config.lines_per_request() < 10.7
    big = config.for_lines_per_day(1_000_000)
    assert 90_000 < big.requests_per_day < 100_000
    assert SampleConfig(start="2025-06-02").start == START  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SampleConfig(duplicate_rate=1.5)
    with pytest.raises(ValueError):
        SampleConfig(files_per_dt=0)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# tqdm's closing line: "label: 45%|####5     | 900k/2.00M [00:00<00:00, 3.76G events/s]".
_RATE_AND_ETA = re.compile(r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]? events/s\]\n$")


def test_progress_bar_shows_count_rate_and_eta_and_spares_logs() -> None:
    log = io.StringIO()  # a pipe or a CI log
    with progress_bar(2_000_000, "gen", stream=log) as bar:
        for _ in range(900):
            bar.update(1000)
    last = log.getvalue().split("\r")[-1]
    assert last.startswith("gen:  45%|") and " 900k/2.00M " in last, last
    assert _RATE_AND_ETA.search(last), last
    # 900 updates within a second: the opening line and the closing one, nothing between.
    assert log.getvalue().count("\r") == 2
    tty = _Terminal()
    with progress_bar(None, "sample", stream=tty) as bar:  # the demo's: no total, no ETA
        bar.update(1234)
    assert tty.getvalue().split("\r")[-1].startswith("sample: 1.23k events [")
    assert tty.getvalue().endswith(" events/s]\n")


def test_cli_writes_and_reports_progress(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    cmd = [sys.executable, "-m", "pipelines.sample", "--root", str(root), "--start", "2025-06-02"]
    cmd += ["--days", "2", "--requests-per-day", "200", "--seed", "3"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # stderr is a pipe here: the bar's closing line, with the events it counted (past the
    # estimate, tqdm drops the total and the ETA) and their rate.
    last = proc.stderr.splitlines()[-1]
    summary = json.loads(proc.stdout)
    manifest = load_manifest(str(root))
    events = sum(sum(p["rows"].values()) for p in manifest["partitions"].values())
    assert last.startswith("sample: ") and f" {tqdm.format_sizeof(events)}" in last, last
    assert last.rstrip().endswith(" events/s]"), last
    assert summary["lines"] == sum(f["lines"] for f in manifest["files"].values()) > 0
    assert manifest["config"]["requests_per_day"] == 200 and manifest["config"]["seed"] == 3
    parts, _ = classify(root)
    assert parts == manifest["partitions"]
