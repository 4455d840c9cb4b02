"""Unit tests for pipelines.lib.slo.anomaly: adaptive EWMA bands on generated daily series with
planted anomalies (found, and little else), clean series (quiet), level shifts, flat lines,
short or gappy histories, no leakage, settings refusals and the slice that moved most."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from pipelines.lib.slo.anomaly import (
    BandSettings,
    bands,
    detect,
    precision_recall,
    slice_that_moved_most,
)

SEED = 7
START = date(2025, 1, 6)  # a Monday
NOISE_SD = 20.0  # the day-to-day noise of the generated metric: "k sigma" below is k * this
# A weekday profile (Monday first) with the weekend dip of a consumer product, mean zero.
WEEKLY = np.array([40.0, 50.0, 45.0, 30.0, 0.0, -90.0, -75.0])


def metric(rng: np.random.Generator, n_days: int, level: float = 1000.0) -> np.ndarray:
    """Level + a slow trend (+0.4/day, ~15% a year) + weekly seasonality + Gaussian noise."""
    day = np.arange(n_days)
    return level + 0.4 * day + WEEKLY[day % 7] + rng.normal(0.0, NOISE_SD, n_days)


def as_series(values: np.ndarray) -> dict[date, float]:
    return {START + timedelta(days=i): float(v) for i, v in enumerate(values)}


def day_index(day: date) -> int:
    return (day - START).days


# --- planted anomalies ---------------------------------------------------------------------------


PLANTED_SEEDS = range(30)


def test_planted_spikes_and_dips_are_found_and_little_else() -> None:
    # 6-9 noise sigmas: with a 28-day window the band's std is ~1.3 noise sigmas (the weekday
    # offsets rest on 4 points each), so these are 4.6-6.9 of its own. Measured over 50 seeds,
    # a 5-sigma anomaly is caught 71% of the time, 6: 90%, 7: 98%, 8: 100%: about 97% of these
    # overall. False alarms run near 0.97 a clean year, so ~0.4 over the ~150 judged days here.
    # The bounds below leave room for that spread over the seeds and none for a broken detector
    # (one that flags nothing, everything, or every day near a spike).
    found = planted_total = flagged_total = 0
    worst_recall = worst_precision = 1.0
    for seed in PLANTED_SEEDS:
        rng = np.random.default_rng(seed)
        values = metric(rng, 180)
        planted = np.linspace(35, 172, 8).astype(int)  # after the first 28-day window, ~20 apart
        sign = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)
        values[planted] += sign * rng.uniform(6.0, 9.0, 8) * NOISE_SD

        flags = detect(as_series(values))
        flagged = {day_index(f.day) for f in flags}
        precision, recall = precision_recall(flagged, set(planted.tolist()))
        print(f"seed {seed}: precision {precision:.2f}, recall {recall:.2f}, {len(flags)} flags")
        found += len(flagged & set(planted.tolist()))
        planted_total += len(planted)
        flagged_total += len(flags)
        worst_recall, worst_precision = min(worst_recall, recall), min(worst_precision, precision)

        by_day = {day_index(f.day): f for f in flags}
        for i, s in zip(planted, sign, strict=True):
            flag = by_day.get(int(i))
            if flag is None:
                continue  # a miss counts against recall above
            assert flag.direction == ("high" if s > 0 else "low"), seed
            assert (flag.z > 3.0) if s > 0 else (flag.z < -3.0), seed
            assert not flag.lower <= flag.value <= flag.upper, seed
            assert flag.lower < flag.expected < flag.upper, seed

    # Pooled over the seeds (measured: recall 235/240 = 0.98, precision 235/243 = 0.97).
    assert found / planted_total >= 0.93
    assert found / flagged_total >= 0.90
    # No seed loses more than two of its eight, or has fewer than 3 in 5 of its flags on a
    # planted day (measured: worst recall 0.875, worst precision 0.70).
    assert worst_recall >= 0.75
    assert worst_precision >= 0.60


def test_a_clean_year_raises_at_most_one_marginal_flag() -> None:
    # |z| > 3 on a normal is 0.27% of days, ~1 a clean year at the nominal rate: zero for one
    # seed would be a property of the seed. This seed has one, barely over (z 3.13).
    flags = detect(as_series(metric(np.random.default_rng(SEED), 365)))
    print(f"seed {SEED}: clean year flags {[(str(f.day), round(f.z, 2)) for f in flags]}")
    assert len(flags) <= 1
    assert all(abs(f.z) < 3.5 for f in flags)


def test_false_alarms_stay_near_the_nominal_rate_over_many_clean_years() -> None:
    # The band's std is widened for its degrees of freedom so that the rate stays near nominal
    # (0.97 a year) however short the history: measured 0.95 a year over these 20.
    flags = [len(detect(as_series(metric(np.random.default_rng(s), 365)))) for s in range(20)]
    print(f"false alarms per clean year over 20 seeds: {flags}")
    assert sum(flags) / 20 <= 2.0


# --- level shifts and flat lines -----------------------------------------------------------------


def test_a_level_shift_is_flagged_from_its_first_day_then_adopted() -> None:
    values = metric(np.random.default_rng(SEED), 180)
    values[100:] += 10 * NOISE_SD
    judged = {day_index(b.day): b for b in bands(as_series(values))}
    flagged = sorted(i for i, b in judged.items() if abs(b.z) > 3)

    assert flagged[0] == 100 and judged[100].z > 3
    assert not [i for i in flagged if 100 - 28 <= i < 100]
    # Three high flags in a row are a new level: the baseline restarts at day 100, days are
    # judged again once 7 points have accumulated, and are quiet at the new level.
    assert [i for i in flagged if i >= 100] == [100, 101, 102]
    assert 103 not in judged and 107 in judged
    new_level = 1000 + 0.4 * 150 + WEEKLY[150 % 7] + 10 * NOISE_SD
    assert abs(judged[150].expected - new_level) < 3 * NOISE_SD


def test_a_flat_line_is_quiet_and_a_jump_off_it_is_flagged() -> None:
    flat = dict.fromkeys((START + timedelta(days=i) for i in range(40)), 100.0)
    assert detect(flat) == []
    # No spread: the std floor (0.1% of the level) is what makes the band.
    assert all(b.std == pytest.approx(0.1) and b.expected == 100.0 for b in bands(flat))

    jump_day = START + timedelta(days=40)
    [flag] = detect({**flat, jump_day: 101.0})
    assert (flag.day, flag.direction, flag.expected) == (jump_day, "high", 100.0)
    assert flag.z == pytest.approx(10.0)
    assert flag.upper == pytest.approx(100.3)

    zeros = dict.fromkeys(flat, 0.0)
    [flag] = detect({**zeros, jump_day: 1.0})
    assert flag.day == jump_day and flag.z > 1e6


# --- which days are judged, on what --------------------------------------------------------------


def test_days_with_too_little_history_are_not_judged() -> None:
    values = metric(np.random.default_rng(SEED), 10)
    values[3] += 50 * NOISE_SD  # a huge spike on the 4th day: nothing to judge it against
    judged = bands(as_series(values))
    assert [day_index(b.day) for b in judged] == [7, 8, 9]
    assert detect(as_series(values)) == []

    # Every other day: the 28-day window holds at most 14 points, and min_history counts points.
    sparse = {START + timedelta(days=i): 1000.0 + i % 5 for i in range(0, 120, 2)}
    settings = BandSettings(min_history=14, season_days=0)
    assert [day_index(b.day) for b in bands(sparse, settings)][:3] == [28, 30, 32]
    assert bands(sparse, replace(settings, min_history=15)) == []


def test_missing_days_are_skipped_not_read_as_zero() -> None:
    values = metric(np.random.default_rng(SEED), 120)
    series = as_series(values)
    for i in range(0, 120, 5):
        del series[START + timedelta(days=i)]  # every 5th day missing
    series[START + timedelta(days=61)] = math.nan
    series[START + timedelta(days=62)] = math.inf

    judged = bands(series)
    assert detect(series) == []
    assert {61, 62}.isdisjoint(day_index(b.day) for b in judged)
    # Not dragged toward zero: near the value even on the first, non-seasonal (wide) bands...
    assert all(abs(b.expected - b.value) < 6 * NOISE_SD for b in judged)
    # ...and within the noise once every weekday has two points in the window.
    assert all(abs(b.expected - b.value) < 3 * NOISE_SD for b in judged if day_index(b.day) >= 35)


def test_a_day_never_informs_its_own_band() -> None:
    values = metric(np.random.default_rng(SEED), 60)
    before = {b.day: b for b in bands(as_series(values))}
    values[45] += 3 * NOISE_SD  # still inside the band: later days see it either way
    after = {b.day: b for b in bands(as_series(values))}
    day = START + timedelta(days=45)
    assert (after[day].expected, after[day].std) == (before[day].expected, before[day].std)
    assert after[day].value != before[day].value


def test_a_flagged_day_is_left_out_of_later_baselines_like_a_missing_day() -> None:
    values = metric(np.random.default_rng(SEED), 90)
    series = as_series(values)
    spike_day = START + timedelta(days=50)
    with_spike = bands({**series, spike_day: series[spike_day] + 10 * NOISE_SD})
    without_day = bands({d: v for d, v in series.items() if d != spike_day})

    later = [b for b in with_spike if b.day > spike_day]
    assert [b.day for b in with_spike if abs(b.z) > 3] == [spike_day]
    assert later == [b for b in without_day if b.day > spike_day]


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"window_days": 2}, "window_days"),
        ({"span_days": 0}, "span_days"),
        ({"width": 0.0}, "width"),
        ({"width": math.nan}, "width"),
        ({"min_history": 2}, "min_history"),
        ({"min_history": 30}, "min_history"),
        ({"season_days": 15}, "season_days"),
        ({"season_days": -1}, "season_days"),
        ({"shift_days": 1}, "shift_days"),
    ],
)
def test_bad_settings_name_the_setting_to_fix(change: dict, setting: str) -> None:
    settings = replace(BandSettings(), **change)
    with pytest.raises(ValueError, match=rf"^{setting}\b") as refused:
        settings.validate()
    with pytest.raises(ValueError, match=rf"^{setting}\b"):
        detect({}, settings)
    assert str(change[setting]) in str(refused.value)


def test_the_defaults_are_the_issue_s_and_valid() -> None:
    settings = BandSettings()
    settings.validate()
    assert settings == BandSettings(
        window_days=28, span_days=7, width=3.0, min_history=7, season_days=7, shift_days=3
    )
    assert bands({}) == [] and detect({}) == []


# --- slices and scoring --------------------------------------------------------------------------


def test_the_slice_that_moved_most_is_the_planted_one() -> None:
    rng = np.random.default_rng(SEED)
    surfaces = {"home": 600.0, "search": 250.0, "related": 150.0}
    per_slice = {name: metric(rng, 90, level) for name, level in surfaces.items()}
    per_slice["search"][70] += 12 * NOISE_SD
    total = sum(per_slice.values())

    [flag] = detect(as_series(total))
    assert day_index(flag.day) == 70
    expected = {
        name: {b.day: b.expected for b in bands(as_series(v))}[flag.day]
        for name, v in per_slice.items()
    }
    today = {name: float(v[70]) for name, v in per_slice.items()}
    name, change = slice_that_moved_most(today, expected)
    assert name == "search"
    assert change == pytest.approx(12 * NOISE_SD, abs=4 * NOISE_SD)


def test_slice_that_moved_most_edges() -> None:
    assert slice_that_moved_most({}, {}) is None
    assert slice_that_moved_most({"a": 5.0}, {"a": 5.0}) is None
    assert slice_that_moved_most({"a": 10.0, "b": 3.0}, {"a": 12.0, "b": 8.0}) == ("b", -5.0)
    # A slice on one side only moved by its whole value.
    assert slice_that_moved_most({"a": 10.0, "new": 7.0}, {"a": 9.0}) == ("new", 7.0)
    assert slice_that_moved_most({"a": 1.0}, {"a": 1.0, "gone": 4.0}) == ("gone", -4.0)
    assert slice_that_moved_most({"b": 2.0, "a": 0.0}, {"b": 0.0, "a": 2.0}) == ("a", -2.0)


def test_precision_recall() -> None:
    assert precision_recall({1, 2, 3, 4}, {2, 3, 5}) == (0.5, 2 / 3)
    assert precision_recall(set(), {1}) == (1.0, 0.0)
    assert precision_recall({1}, set()) == (0.0, 1.0)
    assert precision_recall(set(), set()) == (1.0, 1.0)
