"""Small inline SVG charts for the reports: lines over a sequence, horizontal bars, and intervals
with their point estimate. Pure Python and self-contained (no fonts, scripts or links), so a report
is one HTML file that renders anywhere. Every piece of text is escaped here; callers pass plain
strings. Values are drawn as given; the caller passes the labels already formatted (fmt.py), so a
chart shows exactly the numbers of the report's tables.

No text is clipped: every margin is sized from the text it holds, measured with the fonts' own
advance widths (textwidth.py), and a chart grows wider than ``WIDTH`` when its labels need it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from pipelines.lib.reports.textwidth import text_width

WIDTH = 720  # the width a chart has unless its text needs more
MIN_PLOT = 300.0  # the least room left for the bars, dots or lines themselves
ROW_HEIGHT = 26
TITLE_HEIGHT = 30
PAD = 8.0  # between a chart's edge and its outermost text
GAP = 6.0  # between a label and what it labels
PALETTE = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")
BAD, MUTED = "#c0392b", "#888888"
FONT_SIZE = 12.0
# The fonts textwidth.py measures, in that order; the generic family last.
FONT_FAMILY = "'DejaVu Sans',Arial,'Liberation Sans',Helvetica,sans-serif"
FONT = f"font-family:{FONT_FAMILY};font-size:{FONT_SIZE:g}px"


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


def measure(text: str, *, bold: bool = False) -> float:
    """The most room ``text`` takes in a chart, in px."""
    return text_width(text, FONT_SIZE, bold=bold)


def _widest(texts: Sequence[str]) -> float:
    return max((measure(t) for t in texts), default=0.0)


def _text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" style="{FONT}"{extra}>'
        f"{escape(content)}</text>"
    )


def _chart_width(title: str, needed: float) -> float:
    """``WIDTH``, or more when the text laid out (``needed``) or the title needs it."""
    return math.ceil(max(WIDTH, needed, PAD + measure(title, bold=True) + PAD))


def _svg(title: str, width: float, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        + _text(PAD, 18, title, extra=' font-weight="bold"')
        + "".join(body)
        + "</svg>"
    )


def _no_data(title: str) -> str:
    return _svg(
        title,
        _chart_width(title, 0.0),
        TITLE_HEIGHT + ROW_HEIGHT,
        [_text(PAD, TITLE_HEIGHT + 16, "no data")],
    )


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
    tick_labels = [tick_format(t) for t in ticks]
    every = math.ceil(len(x_labels) / 8)
    shown = [
        i for i in range(len(x_labels)) if i % every == 0 or i == len(x_labels) - 1
    ]  # the x labels printed
    legend = [f"● {s.name}" for s in series]
    legend_width = sum(measure(t) + 2 * GAP for t in legend)
    # The x labels are centred on their point: the first and last reach half their width out.
    left = PAD + max(_widest(tick_labels) + GAP, measure(x_labels[shown[0]]) / 2)
    right_margin = max(20.0, PAD + measure(x_labels[shown[-1]]) / 2)
    width = _chart_width(title, max(left + MIN_PLOT, left + legend_width) + right_margin)
    right, top, bottom = width - right_margin, TITLE_HEIGHT + 24.0, 250.0
    height = bottom + 40

    def x(i: int) -> float:
        return left + (right - left) * (i / (len(x_labels) - 1) if len(x_labels) > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / (high - low)

    body = [
        f'<line x1="{left:.1f}" y1="{y(t):.1f}" x2="{right:.1f}" y2="{y(t):.1f}" '
        f'stroke="#e0e0e0"/>' + _text(left - GAP, y(t) + 4, label, "end")
        for t, label in zip(ticks, tick_labels, strict=True)
    ]
    body += [_text(x(i), bottom + 16, x_labels[i], "middle") for i in shown]
    legend_x = left
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        body.append(_text(legend_x, TITLE_HEIGHT + 8, legend[n], extra=f' fill="{color}"'))
        legend_x += measure(legend[n]) + 2 * GAP
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
    return _svg(title, width, height, body)


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    """Horizontal bars from 0, one row each, with the printed value at the bar's end; an optional
    vertical reference line (a target, a budget's pace); ``bad`` bars are drawn in red."""
    if not bars:
        return _no_data(title)
    top = TITLE_HEIGHT + (18.0 if reference is not None else 6.0)
    left = PAD + _widest([b.label for b in bars]) + GAP
    # A value is printed just past its bar's end, the longest bar's at the plot's right edge; the
    # reference's label is centred on its line, which may be there too.
    right_margin = PAD + max(
        _widest([b.text for b in bars]) + 4, measure(reference_label) / 2 if reference else 0
    )
    width = _chart_width(title, left + MIN_PLOT + right_margin)
    right = width - right_margin
    scale_max = max([b.value for b in bars] + ([reference] if reference is not None else []))
    scale_max = scale_max if scale_max > 0 else 1.0

    def x(v: float) -> float:
        return left + (right - left) * max(v, 0.0) / scale_max

    body = []
    for i, b in enumerate(bars):
        row = top + i * ROW_HEIGHT
        color = BAD if b.bad else PALETTE[0]
        body.append(_text(left - GAP, row + 16, b.label, "end"))
        body.append(
            f'<rect x="{left:.1f}" y="{row + 4:.1f}" width="{x(b.value) - left:.1f}" '
            f'height="16" fill="{color}"><title>{escape(f"{b.label}: {b.text}")}</title></rect>'
        )
        body.append(_text(x(b.value) + 4, row + 16, b.text))
    height = top + len(bars) * ROW_HEIGHT + 8
    if reference is not None:
        body.append(
            f'<line x1="{x(reference):.1f}" y1="{top - 4}" x2="{x(reference):.1f}" '
            f'y2="{height - 4:.1f}" stroke="{MUTED}" stroke-dasharray="4 3"/>'
        )
        body.append(_text(x(reference), top - 6, reference_label, "middle"))
    return _svg(title, width, height, body)


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
    tick_labels = [tick_format(t) for t in ticks]
    # Tick labels are centred on their tick: the outer ones reach half their width out.
    left = PAD + max(_widest([i.label for i in intervals]) + GAP, measure(tick_labels[0]) / 2)
    right_margin = PAD + max(
        GAP + 2 + _widest([i.text for i in intervals]), measure(tick_labels[-1]) / 2
    )
    width = _chart_width(title, left + MIN_PLOT + right_margin)
    right = width - right_margin
    top = TITLE_HEIGHT + 6.0
    bottom = top + len(intervals) * ROW_HEIGHT

    def x(v: float) -> float:
        return left + (right - left) * (v - low) / (high - low)

    body = [
        f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="#e0e0e0"/>'
        + _text(x(t), bottom + 16, label, "middle")
        for t, label in zip(ticks, tick_labels, strict=True)
    ]
    for n, item in enumerate(intervals):
        mid = top + n * ROW_HEIGHT + ROW_HEIGHT / 2
        body.append(_text(left - GAP, mid + 4, item.label, "end"))
        body.append(_text(right + GAP + 2, mid + 4, item.text))
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
    return _svg(title, width, bottom + 28, body)
