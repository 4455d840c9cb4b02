"""Adaptive thresholds: flag a day whose metric value leaves the band its own recent past predicts.

Each day is judged against the trailing ``window_days`` days strictly before it: its own value
never informs its band. Within that window:

* weekly seasonality (``season_days``) is taken out first: each weekday's mean offset from the
  window mean. Only once every weekday has two points in the window; before that the band is
  non-seasonal, and wider, as the spread then carries the weekday swing;
* the expected value is the EWMA (span ``span_days``) of the deseasonalised window plus today's
  weekday offset. Weights decay by age in days, so a missing day costs its weight instead of
  counting as zero;
* the spread is that of one-day-ahead forecast errors within the window (each point against the
  EWMA of the window points before it), scaled up by the noise of the EWMA and of the offset.
  A prediction interval, not the spread of the values: a trend the EWMA follows does not widen
  the band, the lag it cannot follow does. All the window's errors count alike: an EWMA of them
  (span 7) would rest on about 7 points, and its own noise would flag ~2% of clean days;
* with few errors that spread is itself noisy, so the std is widened by t-quantile /
  normal-quantile for its degrees of freedom: |z| > ``width`` keeps about the false alarm rate
  of a ``width``-sigma normal band at any history length (0.27% of clean days at 3, about one a
  year);
* a flat history has no spread: the std is floored at ``STD_FLOOR_FRACTION`` of the expected
  value (``ABS_STD_FLOOR`` at zero), so a flat line raises nothing and a jump off it is flagged.

Flagged days are left out of later baselines, like missing days. Fed in, one 8-sigma spike
would be a forecast error of 8 among ~21 degrees of freedom in each of the next 28 baselines,
doubling their std; even clipped to the band edge (~4) it would widen them by a third. Left out
for good, a genuine level shift would be flagged until the window held nothing from before it.
So ``shift_days`` consecutive flags on the same side are taken as a new level: the baseline
restarts at the first of them, and days are judged again once ``min_history`` points have
accumulated since (seasonally once every weekday has two).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Literal

import numpy as np

# Relative to the expected value: on a flat history a move of 0.3% is already 3 sigma.
STD_FLOOR_FRACTION = 1e-3
# For a history flat at zero, where the relative floor is zero too.
ABS_STD_FLOOR = 1e-9


@dataclass(frozen=True)
class BandSettings:
    window_days: int = 28  # trailing calendar days before the judged day that form its baseline
    span_days: int = 7  # EWMA span of the expected value, in days: alpha = 2 / (span_days + 1)
    width: float = 3.0  # z threshold: the band is expected ± width * std
    min_history: int = 7  # points in the window needed before a day is judged at all
    season_days: int = 7  # period of the seasonality taken out; 0 or 1: none
    shift_days: int = 3  # consecutive same-side flags taken as a new level

    def validate(self) -> None:
        """Raise ValueError naming the setting to fix."""
        if self.window_days < 3:
            raise ValueError(f"window_days must be at least 3 (got {self.window_days})")
        if self.span_days < 1:
            raise ValueError(f"span_days must be at least 1 (got {self.span_days})")
        if not (math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width must be a positive number of sigmas (got {self.width})")
        # One point starts the EWMA; a spread needs at least two forecast errors after it.
        if self.min_history < 3:
            raise ValueError(f"min_history must be at least 3 (got {self.min_history})")
        if self.min_history > self.window_days:
            raise ValueError(
                f"min_history ({self.min_history}) must not exceed window_days "
                f"({self.window_days}): no day could ever be judged"
            )
        if self.season_days < 0 or (
            self.season_days > 1 and 2 * self.season_days > self.window_days
        ):
            raise ValueError(
                f"season_days must be 0 (none) or at most window_days / 2 = "
                f"{self.window_days // 2}, two points per phase (got {self.season_days})"
            )
        # A single flag restarting the baseline would make every spike the new normal.
        if self.shift_days < 2:
            raise ValueError(f"shift_days must be at least 2 (got {self.shift_days})")


@dataclass(frozen=True)
class Band:
    """A judged day: its value against the band its trailing window predicts."""

    day: date
    value: float
    expected: float
    std: float  # already widened for a short history; never below the floor
    lower: float
    upper: float
    z: float  # signed: (value - expected) / std


@dataclass(frozen=True)
class Flag:
    day: date
    value: float
    expected: float
    lower: float
    upper: float
    z: float
    direction: Literal["high", "low"]


def detect(series: Mapping[date, float], settings: BandSettings | None = None) -> list[Flag]:
    """The days of ``series`` outside their band, oldest first (see :func:`bands`)."""
    settings = settings or BandSettings()
    return [
        Flag(b.day, b.value, b.expected, b.lower, b.upper, b.z, "high" if b.z > 0 else "low")
        for b in bands(series, settings)
        if abs(b.z) > settings.width
    ]


def bands(series: Mapping[date, float], settings: BandSettings | None = None) -> list[Band]:
    """Every judged day of ``series`` with its band, oldest first.

    ``series`` maps day -> value; its order is not relied on. Missing days and non-finite values
    are skipped (not read as zero). Days with fewer than ``min_history`` points in their window
    are not judged. Run on each slice's series, this gives the baselines for
    :func:`slice_that_moved_most`.
    """
    settings = settings or BandSettings()
    settings.validate()
    kept = sorted((d, float(v)) for d, v in series.items() if math.isfinite(float(v)))
    days = [d for d, _ in kept]
    ordinal_days = np.array([d.toordinal() for d in days], dtype=np.int64)
    values = np.array([v for _, v in kept], dtype=float)
    in_baseline = np.ones(len(values), dtype=bool)
    baseline_start = 0  # index of the first point any baseline may use: moves on a level shift
    run: list[int] = []  # consecutive flagged points, oldest first, all on the side run_high
    run_high = False
    judged = []
    for i, day in enumerate(days):
        window_start = np.searchsorted(ordinal_days, ordinal_days[i] - settings.window_days)
        start = max(window_start, baseline_start)
        window = np.arange(start, i)[in_baseline[start:i]]
        if len(window) < settings.min_history:
            continue
        expected, std = _expected_and_std(
            ordinal_days[window], values[window], ordinal_days[i], settings
        )
        value = float(values[i])
        z = (value - expected) / std
        half_width = settings.width * std
        judged.append(
            Band(day, value, expected, std, expected - half_width, expected + half_width, z)
        )
        if abs(z) <= settings.width:
            run = []
            continue
        in_baseline[i] = False
        if run_high != (z > 0):
            run, run_high = [], z > 0
        run.append(i)
        if len(run) >= settings.shift_days:
            baseline_start = run[0]
            in_baseline[run] = True
            run = []
    return judged


def slice_that_moved_most(
    today: Mapping[str, float], baseline: Mapping[str, float]
) -> tuple[str, float] | None:
    """The slice with the largest absolute change from its expected value, and that change.

    For an additive metric (counts, sums) the changes add up to the total's change, so this is
    the slice that contributed most to it. A slice present on one side only moved by its whole
    value. None when there are no slices or nothing moved. Ties go to the first slice by name.
    """
    names = sorted(set(today) | set(baseline))
    if not names:
        return None
    change = np.array([today.get(n, 0.0) - baseline.get(n, 0.0) for n in names], dtype=float)
    most = int(np.argmax(np.abs(change)))
    if change[most] == 0:
        return None
    return names[most], float(change[most])


def precision_recall(flagged: set, planted: set) -> tuple[float, float]:
    """Precision and recall of ``flagged`` against ``planted``. With nothing flagged precision is
    1.0 (no false alarm was raised); with nothing planted recall is 1.0 (nothing was missed)."""
    hits = len(flagged & planted)
    precision = hits / len(flagged) if flagged else 1.0
    recall = hits / len(planted) if planted else 1.0
    return precision, recall


def _expected_and_std(
    ordinal_days: np.ndarray, values: np.ndarray, today: int, settings: BandSettings
) -> tuple[float, float]:
    """Expected value and std for ``today`` from the window points before it (oldest first)."""
    today_offset, offset_variance_share, fitted_offsets = 0.0, 0.0, 0
    period = settings.season_days
    if period > 1:
        phases = ordinal_days % period
        counts = np.bincount(phases, minlength=period)
        if counts.min() >= 2:
            offsets = np.bincount(phases, weights=values - values.mean(), minlength=period)
            offsets = offsets / counts
            offsets -= offsets.mean()
            values = values - offsets[phases]
            today_offset = offsets[today % period]
            # Today's offset is a mean of that phase's points: their noise adds to today's error.
            offset_variance_share = 1.0 / counts[today % period]
            fitted_offsets = period - 1

    # weights[j, i]: weight of point i in the EWMA forecast of point j + 1 (earlier points only);
    # the last row forecasts today. Each row counts age from its newest point: the scale cancels
    # in the normalisation and nothing underflows.
    decay = 1.0 - 2.0 / (settings.span_days + 1)
    gap_days = np.append(ordinal_days[1:], today)[:, None] - ordinal_days[None, :]
    nearest_days = np.where(gap_days > 0, gap_days, np.iinfo(np.int64).max).min(axis=1)
    weights = np.where(gap_days > 0, decay ** (gap_days - nearest_days[:, None]), 0.0)
    totals = weights.sum(axis=1)
    forecasts = weights @ values / totals
    # Variance of a weighted mean of iid points, relative to one point's: 1 / effective n.
    forecast_variance_share = (weights**2).sum(axis=1) / totals**2

    errors = values[1:] - forecasts[:-1]
    standardised = errors / np.sqrt(1.0 + forecast_variance_share[:-1])
    dof = len(errors) - fitted_offsets  # >= 2 by validate() and the two-points-per-phase rule
    sigma = math.sqrt(float(standardised @ standardised) / dof)
    std = sigma * math.sqrt(1.0 + forecast_variance_share[-1] + offset_variance_share)
    std *= _small_sample_factor(settings.width, dof)

    expected = float(forecasts[-1] + today_offset)
    return expected, max(std, STD_FLOOR_FRACTION * abs(expected), ABS_STD_FLOOR)


@lru_cache(maxsize=256)
def _small_sample_factor(width: float, dof: int) -> float:
    """How much wider a t band with ``dof`` degrees of freedom is than the normal band with the
    same tail probability."""
    # -stdtrit(dof, ndtr(-w)) is stats.t.isf(stats.norm.sf(w), dof). Imported here, and not
    # scipy.stats: loading the code location (every command-line run and step process) would
    # otherwise pay about 0.6 s for it.
    from scipy import special

    return float(-special.stdtrit(dof, special.ndtr(-width)) / width)
