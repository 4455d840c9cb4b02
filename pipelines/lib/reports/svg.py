"""Small inline SVG charts for the reports: lines over a sequence, horizontal bars, and intervals
with their point estimate. Pure Python and self-contained (no fonts, scripts or links), so a report
is one HTML file that renders anywhere. Every piece of text is escaped here; callers pass plain
strings. Values are drawn as given; the caller passes the labels already formatted (fmt.py), so a
chart shows exactly the numbers of the report's tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
ROW_HEIGHT = 26
TITLE_HEIGHT = 30
LEFT_LABELS = 220  # room for bar and interval labels (a bucket, an error code)
PALETTE = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
BAD, MUTED = "#c0392b", "#888888"
FONT = "font-family:sans-serif;font-size:12px"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per x label; None leaves a gap


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as the report prints it
    bad: bool = False


@dataclass(frozen=True)
class Interval:
    label: str
    value: float | None
    low: float | None
    high: float | None
    text: str


def _text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" style="{FONT}"{extra}>'
        f"{escape(content)}</text>"
    )


def _svg(title: str, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        + _text(8, 18, title, extra=' font-weight="bold"')
        + "".join(body)
        + "</svg>"
    )


def _no_data(title: str) -> str:
    return _svg(title, TITLE_HEIGHT + ROW_HEIGHT, [_text(8, TITLE_HEIGHT + 16, "no data")])


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low}..{high}")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:  # the tolerance: no extra tick for rounding noise
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    tick_format: Callable[[float], str],
    point_format: Callable[[float], str],
) -> str:
    """One line per series over ``x_labels``, a y axis from 0 (or below, for negatives)."""
    values = [v for s in series for v in s.values if v is not None]
    if not x_labels or not values:
        return _no_data(title)
    ticks = nice_ticks(min(0.0, *values), max(values))
    low, high = ticks[0], ticks[-1]
    left, right, top, bottom = 70.0, WIDTH - 20.0, TITLE_HEIGHT + 24.0, 250.0
    height = bottom + 40

    def x(i: int) -> float:
        return left + (right - left) * (i / (len(x_labels) - 1) if len(x_labels) > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / (high - low)

    body = [
        f'<line x1="{left}" y1="{y(t):.1f}" x2="{right}" y2="{y(t):.1f}" stroke="#e0e0e0"/>'
        + _text(left - 6, y(t) + 4, tick_format(t), "end")
        for t in ticks
    ]
    every = math.ceil(len(x_labels) / 8)
    body += [
        _text(x(i), bottom + 16, label, "middle")
        for i, label in enumerate(x_labels)
        if i % every == 0 or i == len(x_labels) - 1
    ]
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        body.append(
            _text(left + 110 * n, TITLE_HEIGHT + 8, f"● {s.name}", extra=f' fill="{color}"')
        )
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
            body.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(f'{x_labels[i]} {s.name}: {point_format(v)}')}</title></circle>"
            )
        body += [
            f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"/>'
            for run in runs
            if len(run) > 1
        ]
    return _svg(title, height, body)


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """Horizontal bars from 0, one row each, with the printed value at the bar's end; an optional
    vertical reference line (a target, 100% of a budget); ``bad`` bars are drawn in red."""
    if not bars:
        return _no_data(title)
    top = TITLE_HEIGHT + (18.0 if reference is not None else 6.0)
    left, right = float(LEFT_LABELS), WIDTH - 90.0
    scale_max = max([b.value for b in bars] + ([reference] if reference is not None else []))
    scale_max = scale_max if scale_max > 0 else 1.0

    def x(v: float) -> float:
        return left + (right - left) * max(v, 0.0) / scale_max

    body = []
    for i, b in enumerate(bars):
        row = top + i * ROW_HEIGHT
        color = BAD if b.bad else PALETTE[0]
        body.append(_text(left - 6, row + 16, b.label, "end"))
        body.append(
            f'<rect x="{left}" y="{row + 4:.1f}" width="{x(b.value) - left:.1f}" height="16" '
            f'fill="{color}"><title>{escape(f"{b.label}: {b.text}")}</title></rect>'
        )
        body.append(_text(x(b.value) + 4, row + 16, b.text))
    height = top + len(bars) * ROW_HEIGHT + 8
    if reference is not None:
        body.append(
            f'<line x1="{x(reference):.1f}" y1="{top - 4}" x2="{x(reference):.1f}" '
            f'y2="{height - 4:.1f}" stroke="{MUTED}" stroke-dasharray="4 3"/>'
        )
        body.append(_text(x(reference), top - 6, reference_label, "middle"))
    return _svg(title, height, body)


def interval_chart(
    title: str, intervals: Sequence[Interval], tick_format: Callable[[float], str]
) -> str:
    """One row per label: the interval as a whisker and the estimate as a dot, on a shared axis."""
    drawn = [i for i in intervals if i.value is not None]
    if not drawn:
        return _no_data(title)
    values = [v for i in drawn for v in (i.value, i.low, i.high) if v is not None]
    ticks = nice_ticks(min(values), max(values))
    low, high = ticks[0], ticks[-1]
    left, right = float(LEFT_LABELS), WIDTH - 160.0
    top = TITLE_HEIGHT + 6.0
    bottom = top + len(intervals) * ROW_HEIGHT

    def x(v: float) -> float:
        return left + (right - left) * (v - low) / (high - low)

    body = [
        f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="#e0e0e0"/>'
        + _text(x(t), bottom + 16, tick_format(t), "middle")
        for t in ticks
    ]
    for n, item in enumerate(intervals):
        mid = top + n * ROW_HEIGHT + ROW_HEIGHT / 2
        body.append(_text(left - 6, mid + 4, item.label, "end"))
        body.append(_text(right + 8, mid + 4, item.text))
        if item.low is not None and item.high is not None:
            body.append(
                f'<line x1="{x(item.low):.1f}" y1="{mid}" x2="{x(item.high):.1f}" y2="{mid}" '
                f'stroke="{PALETTE[0]}" stroke-width="2"/>'
            )
        if item.value is not None:
            body.append(
                f'<circle cx="{x(item.value):.1f}" cy="{mid}" r="4" fill="{PALETTE[0]}">'
                f"<title>{escape(f'{item.label}: {item.text}')}</title></circle>"
            )
    return _svg(title, bottom + 28, body)
