"""Turn measured rounds into the results table, the ratios against the targets, and JSON."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bench.steps import Step

# Ratio name -> (numerator steps, denominator step, target: the ratio must stay at or below it).
RATIOS: dict[str, tuple[tuple[str, ...], str, float | None]] = {
    "ingest/baseline": (("ingest",), "baseline", 2.0),
    "contracts/ingest": (("contracts",), "ingest", None),
    "daily rollups/ingest": (("daily_rollups",), "ingest", 1.0),
    "(contracts+daily rollups)/ingest": (("contracts", "daily_rollups"), "ingest", 1.0),
    "weekly rollups/daily rollups": (("weekly_rollups",), "daily_rollups", 3.0),
    "naive/ingest": (("naive",), "ingest", None),
    "ingest/dlt": (("ingest",), "dlt", None),
}
# --steady: one partition's ingest (four full landing days) against the copy of one landing day.
STEADY_RATIOS: dict[str, tuple[tuple[str, ...], str, float | None]] = {
    "ingest/plain copy (1 landing day)": (("steady_ingest",), "steady_baseline", 2.0),
    "contracts/ingest": (("steady_contracts",), "steady_ingest", None),
    "daily rollups/ingest": (("steady_daily_rollups",), "steady_ingest", 1.0),
    "(contracts+daily rollups)/ingest": (
        ("steady_contracts", "steady_daily_rollups"),
        "steady_ingest",
        1.0,
    ),
}
INSTALL_HINT = "pip install -e '.[bench]'"
SCALE_TIME_TARGET = 11.0  # time(10x day) / time(1x day)
SCALE_RSS_RATIO_TARGET = 1.5  # peak RSS(10x day) / peak RSS(1x day)
RSS_LIMIT_MB = 2048.0


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def step_row(step: Step, runs: list[dict[str, Any]], total_lines: int) -> dict[str, Any]:
    """Median seconds (scaled to ``total_lines`` when the step ran on a sample) and max peak RSS."""
    row: dict[str, Any] = {"step": step.name, "title": step.title, "built": step.built}
    if step.missing:
        row["skipped"] = f"{step.missing} not installed ({INSTALL_HINT})"
    if not runs:
        return {**row, "seconds": None, "events_per_s": None, "peak_rss_mb": None, "scaled": False}
    measured = statistics.median(r["seconds"] for r in runs)
    sample = runs[0]["lines"]
    seconds = measured * total_lines / sample if sample else measured
    return {
        **row,
        "seconds": round(seconds, 3),
        "events_per_s": round(total_lines / seconds) if seconds > 0 else None,
        "peak_rss_mb": max(_mb(r["peak_rss_kib"]) for r in runs),
        "scaled": bool(sample),
        "measured_seconds": round(measured, 3),
        "measured_lines": sample or total_lines,
        "rounds": [{**r, "peak_rss_mb": _mb(r["peak_rss_kib"])} for r in runs],
    }


def ratios(
    rows: list[dict[str, Any]],
    table: dict[str, tuple[tuple[str, ...], str, float | None]] = RATIOS,
) -> dict[str, dict[str, Any]]:
    """Each ratio of median seconds with its target; ``value`` is None while a step is missing."""
    seconds = {row["step"]: row["seconds"] for row in rows}
    out = {}
    for name, (numerators, denominator, target) in table.items():
        parts = [seconds.get(s) for s in (*numerators, denominator)]
        value = None
        if all(p is not None for p in parts) and parts[-1]:
            value = round(sum(parts[:-1]) / parts[-1], 2)
        ok = None if value is None or target is None else value <= target
        out[name] = {"value": value, "target": target, "ok": ok}
    return out


def scale_summary(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Ingest time and peak RSS of the 10x day against the 1x day's, with the issue's targets."""
    a = next(r for r in small["steps"] if r["step"] == "ingest")
    b = next(r for r in large["steps"] if r["step"] == "ingest")
    time_ratio = round(b["seconds"] / a["seconds"], 2)
    rss_ratio = round(b["peak_rss_mb"] / a["peak_rss_mb"], 2)
    return {
        "lines": [small["lines"], large["lines"]],
        "ingest_seconds": [a["seconds"], b["seconds"]],
        "peak_rss_mb": [a["peak_rss_mb"], b["peak_rss_mb"]],
        "time_ratio": {"value": time_ratio, "target": SCALE_TIME_TARGET},
        "rss_ratio": {"value": rss_ratio, "target": SCALE_RSS_RATIO_TARGET},
        "rss_limit_mb": {"value": b["peak_rss_mb"], "target": RSS_LIMIT_MB},
        "suite": large,
        "ok": time_ratio <= SCALE_TIME_TARGET
        and rss_ratio <= SCALE_RSS_RATIO_TARGET
        and b["peak_rss_mb"] <= RSS_LIMIT_MB,
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews timing
        **{name: metadata.version(name) for name in ("duckdb", "pyarrow", "pandas")},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _note(row: dict[str, Any]) -> str:
    if not row["built"]:
        return "not built"
    if row.get("skipped"):
        return f"skipped: {row['skipped']}"
    if row["scaled"]:
        return (
            f"scaled from {row['measured_lines']:,} lines measured "
            f"in {row['measured_seconds']:.2f} s"
        )
    return ""


def _verdict(ok: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: ""}[ok]


def format_table(result: dict[str, Any]) -> str:
    """The steps table and the ratios, as printed on stdout."""
    if result.get("mode") == "steady":
        first, last = result["full_landing_days"]
        head = [
            f"telemetry-lake bench, steady state: {result['steady_days']} full landing days "
            f"({first}..{last}), {result['lines']:,} lines on landing day {result['day']}; "
            f"partition {result['day']} reads {result['partition_lines']:,} lines of four of "
            f"them: median seconds of {result['rounds']} round(s), max peak RSS, each step in a "
            "fresh process; events/s are one landing day's lines per second",
        ]
    else:
        head = [
            f"telemetry-lake bench: {result['lines']:,} landing lines read by partition "
            f"{result['day']}: median seconds of {result['rounds']} round(s), max peak RSS, "
            "each step in a fresh process",
        ]
    lines = [
        *head,
        "",
        f"{'step':<32}{'seconds':>10}{'events/s':>12}{'peak RSS MB':>13}  note",
    ]
    for row in result["steps"]:
        lines.append(
            f"{row['title']:<32}{_num(row['seconds'], '.2f'):>10}"
            f"{_num(row['events_per_s'], ',d'):>12}{_num(row['peak_rss_mb'], '.1f'):>13}"
            f"  {_note(row)}".rstrip()
        )
    lines += ["", f"{'ratio':<34}{'value':>8}  target"]
    for name, ratio in result["ratios"].items():
        value = "n/a" if ratio["value"] is None else f"{ratio['value']:.2f}x"
        target = "" if ratio["target"] is None else f"<= {ratio['target']:.1f}x"
        lines.append(f"{name:<34}{value:>8}  {target:<9}{_verdict(ratio['ok'])}".rstrip())
    return "\n".join(lines)


def format_scale(scale: dict[str, Any]) -> str:
    """The 10x day against the 1x day: ingest time and peak RSS, each against its target."""
    small, large = scale["lines"]
    checks = (
        ("ingest time ratio", "time_ratio", "x"),
        ("ingest peak RSS ratio", "rss_ratio", "x"),
        ("ingest peak RSS (10x day)", "rss_limit_mb", " MB"),
    )
    lines = [
        f"scale: ingest of {large:,} lines vs {small:,} lines: "
        f"{scale['ingest_seconds'][0]:.2f} s -> {scale['ingest_seconds'][1]:.2f} s, "
        f"peak RSS {scale['peak_rss_mb'][0]:.1f} MB -> {scale['peak_rss_mb'][1]:.1f} MB"
    ]
    for label, key, unit in checks:
        value, target = scale[key]["value"], scale[key]["target"]
        shown, limit = f"{value:.2f}{unit}", f"<= {target:g}{unit}"
        lines.append(f"  {label:<28}{shown:>12}  {limit:<11}{_verdict(value <= target)}")
    return "\n".join(lines)
