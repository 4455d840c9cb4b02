"""Unit tests for pipelines.lib.rollups.experiments: CTR delta method, lifts, SRM, edge cases.

Expected values are computed from simulated per-request arrays with numpy/scipy directly
(np.cov, scipy.stats.norm, scipy.stats.chisquare), not from the module's sufficient-statistic
algebra, so a wrong formula in the module shows up as a mismatch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pipelines.lib.rollups.experiments import COUNT_COLUMNS, OUTPUT_COLUMNS, evaluate

RTOL = 1e-9


def simulate(rng: np.random.Generator, m: int, ctr: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-request impressions and clicks, with clicks correlated within a request.

    Each request draws its own click propensity from Beta(a, b) with mean ``ctr`` (intra-request
    correlation 1/(a+b+1) = 1/6), so the clustered error is clearly larger than the binomial one.
    """
    n = 1 + rng.poisson(4.0, m)
    a = 5.0 * ctr
    p = rng.beta(a, 5.0 - a, m)
    return n, rng.binomial(n, p)


def row(experiment_id: str, bucket: str, n: np.ndarray, c: np.ndarray) -> dict:
    """The sufficient statistics upstream SQL would produce for these requests."""
    n, c = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    return {
        "experiment_id": experiment_id,
        "bucket": bucket,
        "requests": len(n),
        "impressions": int(n.sum()),
        "clicks": int(c.sum()),
        "impressions_sq": int((n * n).sum()),
        "clicks_sq": int((c * c).sum()),
        "clicks_impressions": int((c * n).sum()),
    }


def table(rows: list[dict]) -> pa.Table:
    schema = pa.schema(
        [("experiment_id", pa.string()), ("bucket", pa.string())]
        + [(name, pa.int64()) for name in COUNT_COLUMNS]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def by_key(result: pa.Table) -> dict[tuple[str, str], dict]:
    return {(r["experiment_id"], r["bucket"]): r for r in result.to_pylist()}


def reference(n: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """CTR and its delta-method variance, straight from the request arrays with np.cov."""
    m = len(n)
    cov = np.cov(np.vstack([c, n]).astype(np.float64))  # ddof=1; rows: c, n
    r = c.sum() / n.sum()
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (m * n.mean() ** 2)
    return float(r), float(var)


def evaluate_strict(buckets: pa.Table, **kwargs) -> pa.Table:
    """evaluate() with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return evaluate(buckets, **kwargs)


def assert_no_nan(result: pa.Table) -> None:
    for name in OUTPUT_COLUMNS:
        values = result.column(name).to_numpy(zero_copy_only=False)
        finite_or_null = np.isfinite(values) | np.asarray(result.column(name).is_null())
        assert finite_or_null.all(), f"{name} has NaN/inf: {result.column(name)}"
        assert not pc.any(pc.is_nan(result.column(name))).as_py()


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_matches_request_level_computation(confidence: float):
    rng = np.random.default_rng(20250602)
    arrays = {
        ("exp1", "control"): simulate(rng, 800, 0.10),
        ("exp1", "t1"): simulate(rng, 750, 0.12),
        ("exp1", "t2"): simulate(rng, 820, 0.09),
        ("exp2", "control"): simulate(rng, 400, 0.20),
        ("exp2", "t"): simulate(rng, 420, 0.23),
    }
    rows = [row(e, b, n, c) for (e, b), (n, c) in arrays.items()]
    # Interleave experiments so control lookup cannot rely on row order.
    result = by_key(
        evaluate_strict(table([rows[i] for i in (3, 1, 4, 0, 2)]), confidence=confidence)
    )

    z = stats.norm.ppf(0.5 + confidence / 2)
    for (exp, bucket), (n, c) in arrays.items():
        got = result[(exp, bucket)]
        r, var = reference(n, c)
        se = math.sqrt(var)
        np.testing.assert_allclose(got["ctr"], r, rtol=RTOL)
        np.testing.assert_allclose(got["ctr_se"], se, rtol=RTOL)
        np.testing.assert_allclose(got["ctr_ci_low"], r - z * se, rtol=RTOL)
        np.testing.assert_allclose(got["ctr_ci_high"], r + z * se, rtol=RTOL)
        if bucket == "control":
            assert all(got[k] is None for k in OUTPUT_COLUMNS[4:11]), got
            continue
        r_c, var_c = reference(*arrays[(exp, "control")])
        lift, se_lift = r - r_c, math.sqrt(var + var_c)
        np.testing.assert_allclose(got["lift_abs"], lift, rtol=RTOL)
        np.testing.assert_allclose(got["lift_abs_ci_low"], lift - z * se_lift, rtol=RTOL)
        np.testing.assert_allclose(got["lift_abs_ci_high"], lift + z * se_lift, rtol=RTOL)
        np.testing.assert_allclose(
            got["p_value"], 2 * stats.norm.sf(abs(lift) / se_lift), rtol=RTOL
        )
        rel = r / r_c - 1
        se_rel = abs(r / r_c) * math.sqrt(var / r**2 + var_c / r_c**2)
        np.testing.assert_allclose(got["lift_rel"], rel, rtol=RTOL)
        np.testing.assert_allclose(got["lift_rel_ci_low"], rel - z * se_rel, rtol=RTOL)
        np.testing.assert_allclose(got["lift_rel_ci_high"], rel + z * se_rel, rtol=RTOL)

    for exp in ("exp1", "exp2"):
        keys = [k for k in arrays if k[0] == exp]
        chi2, p = stats.chisquare([len(arrays[k][0]) for k in keys])
        for k in keys:
            assert result[k]["expected_share"] == pytest.approx(1 / len(keys), rel=RTOL)
            np.testing.assert_allclose(result[k]["srm_chi2"], chi2, rtol=RTOL)
            np.testing.assert_allclose(result[k]["srm_p_value"], p, rtol=RTOL)


def test_bootstrap_agrees_with_delta_method_and_binomial_se_is_too_small():
    rng = np.random.default_rng(7)
    n, c = simulate(rng, 2000, 0.10)
    got = evaluate_strict(table([row("e", "control", n, c)])).to_pylist()[0]

    idx = rng.integers(0, len(n), size=(2000, len(n)))  # 2000 request-level resamples
    boot_se = float(np.std(c[idx].sum(axis=1) / n[idx].sum(axis=1), ddof=1))
    assert got["ctr_se"] == pytest.approx(boot_se, rel=0.10)

    p = c.sum() / n.sum()
    naive_se = math.sqrt(p * (1 - p) / n.sum())
    assert naive_se < 0.85 * boot_se, (naive_se, boot_se)
    assert naive_se < 0.85 * got["ctr_se"], (naive_se, got["ctr_se"])


def srm_table(experiment_id: str, requests: dict[str, int]) -> pa.Table:
    """Buckets with the given request counts; one impression and a click on every 10th request."""
    rows = []
    for bucket, m in requests.items():
        c = (np.arange(m) % 10 == 0).astype(np.int64)
        rows.append(row(experiment_id, bucket, np.ones(m, dtype=np.int64), c))
    return table(rows)


def test_srm_balanced_equal_split_is_not_flagged():
    result = evaluate_strict(srm_table("e", {"control": 5003, "t": 4997})).to_pylist()
    chi2, p = stats.chisquare([5003, 4997])
    for r in result:
        assert r["expected_share"] == 0.5
        assert r["srm_chi2"] == pytest.approx(chi2, rel=RTOL)
        assert r["srm_p_value"] == pytest.approx(p, rel=RTOL)
        assert r["srm_p_value"] > 0.9


def test_srm_52_48_on_10000_requests_is_flagged():
    result = evaluate_strict(srm_table("e", {"control": 5200, "t": 4800})).to_pylist()
    chi2, p = stats.chisquare([5200, 4800])
    assert chi2 == pytest.approx(16.0)
    for r in result:
        assert r["srm_chi2"] == pytest.approx(chi2, rel=RTOL)
        assert r["srm_p_value"] == pytest.approx(p, rel=RTOL)
        assert r["srm_p_value"] < 0.001


def test_srm_configured_split():
    splits = {"e": {"control": 0.2, "t": 0.8}}
    result = evaluate_strict(srm_table("e", {"control": 200, "t": 800}), splits=splits)
    assert result.column("expected_share").to_pylist() == [0.2, 0.8]
    assert result.column("srm_chi2").to_pylist() == [0.0, 0.0]
    assert result.column("srm_p_value").to_pylist() == [1.0, 1.0]

    # The same counts under the default equal split are a gross mismatch.
    flagged = evaluate_strict(srm_table("e", {"control": 200, "t": 800}))
    assert flagged.column("srm_p_value").to_pylist()[0] < 1e-12

    # Three buckets, uneven split, against scipy with explicit expected frequencies.
    shares = {"control": 0.5, "t1": 0.3, "t2": 0.2}
    counts = {"control": 5100, "t1": 2950, "t2": 1950}
    got = evaluate_strict(srm_table("x", counts), splits={"x": shares}).to_pylist()
    total = sum(counts.values())
    chi2, p = stats.chisquare(list(counts.values()), [total * s for s in shares.values()])
    assert got[0]["srm_chi2"] == pytest.approx(chi2, rel=RTOL)
    assert got[0]["srm_p_value"] == pytest.approx(p, rel=RTOL)
    assert [r["expected_share"] for r in got] == list(shares.values())


def test_edge_cases_give_nulls_without_warnings():
    rng = np.random.default_rng(3)
    n, c = simulate(rng, 300)
    ones = np.ones(40, dtype=np.int64)
    rows = [
        # A treatment with a single request: point estimates yes, errors no.
        row("single", "control", n, c),
        row("single", "t", [4], [1]),
        # An unexposed bucket (all sums 0) and one whose sums came back NULL from a left join.
        row("empty", "control", n, c),
        row("empty", "t", [], []),
        {"experiment_id": "empty", "bucket": "t_null", "requests": None, "impressions": None},
        # Control without clicks (ctr_control = 0, variance 0); t2 also without clicks.
        row("zero", "control", 3 * ones, 0 * ones),
        row("zero", "t1", n, c),
        row("zero", "t2", 2 * ones, 0 * ones),
        # Every request has the same ratio 1/3: variance is exactly 0, not rounding noise.
        row("const", "control", 3 * ones, ones),
        row("const", "t", np.r_[3 * ones, 6 * ones], np.r_[ones, 2 * ones]),
        # No control bucket at all.
        row("nocontrol", "a", n, c),
        row("nocontrol", "b", n, c),
        # One request in a one-bucket experiment.
        row("lonely", "control", [5], [2]),
    ]
    result = evaluate_strict(table(rows))
    assert_no_nan(result)
    got = by_key(result)
    r_c, _ = reference(n, c)

    single = got[("single", "t")]
    assert single["ctr"] == 0.25
    assert single["lift_abs"] == pytest.approx(0.25 - r_c, rel=RTOL)
    assert single["lift_rel"] == pytest.approx(0.25 / r_c - 1, rel=RTOL)
    for k in ("ctr_se", "ctr_ci_low", "ctr_ci_high", "lift_abs_ci_low", "lift_abs_ci_high"):
        assert single[k] is None, k
    assert single["lift_rel_ci_low"] is None and single["p_value"] is None

    for bucket in ("t", "t_null"):
        empty = got[("empty", bucket)]
        assert all(empty[k] is None for k in OUTPUT_COLUMNS[:11]), empty
    assert got[("empty", "t")]["srm_p_value"] < 1e-12  # 300 / 0 / 0 requests: flagged
    assert got[("empty", "control")]["srm_chi2"] == pytest.approx(stats.chisquare([300, 0, 0])[0])

    zero_c, t1, t2 = got[("zero", "control")], got[("zero", "t1")], got[("zero", "t2")]
    assert (zero_c["ctr"], zero_c["ctr_se"]) == (0.0, 0.0)
    assert zero_c["ctr_ci_low"] is None and zero_c["ctr_ci_high"] is None
    assert t1["lift_rel"] is None and t1["lift_rel_ci_low"] is None
    r1, var1 = reference(n, c)
    assert t1["lift_abs"] == pytest.approx(r1, rel=RTOL)
    assert t1["p_value"] == pytest.approx(2 * stats.norm.sf(r1 / math.sqrt(var1)), rel=RTOL)
    assert t1["lift_abs_ci_low"] == pytest.approx(r1 - 1.959963984540054 * math.sqrt(var1))
    assert t2["lift_abs"] == 0.0 and t2["lift_rel"] is None
    assert t2["p_value"] is None and t2["lift_abs_ci_low"] is None

    for bucket in ("control", "t"):
        const = got[("const", bucket)]
        assert const["ctr"] == pytest.approx(1 / 3, rel=RTOL)
        assert const["ctr_se"] == 0.0
        assert const["ctr_ci_low"] is None
    assert got[("const", "t")]["lift_abs"] == pytest.approx(0.0, abs=1e-15)
    assert got[("const", "t")]["p_value"] is None
    assert got[("const", "t")]["lift_rel_ci_high"] is None

    for bucket in ("a", "b"):
        nocontrol = got[("nocontrol", bucket)]
        assert nocontrol["ctr_se"] is not None
        assert all(nocontrol[k] is None for k in OUTPUT_COLUMNS[4:11]), nocontrol
        assert nocontrol["srm_chi2"] == 0.0 and nocontrol["srm_p_value"] == 1.0

    lonely = got[("lonely", "control")]
    assert lonely["ctr"] == 0.4 and lonely["ctr_se"] is None
    assert lonely["expected_share"] == 1.0
    assert lonely["srm_chi2"] is None and lonely["srm_p_value"] is None


def test_control_is_looked_up_by_the_given_name():
    rng = np.random.default_rng(13)
    buckets = table([row("e", "baseline", *simulate(rng, 200)), row("e", "t", *simulate(rng, 200))])
    named = by_key(evaluate_strict(buckets, control="baseline"))
    assert named[("e", "baseline")]["lift_abs"] is None
    assert named[("e", "t")]["lift_abs"] == pytest.approx(
        named[("e", "t")]["ctr"] - named[("e", "baseline")]["ctr"], rel=RTOL
    )
    assert named[("e", "t")]["p_value"] is not None
    default = evaluate_strict(buckets)  # no bucket called "control": no lifts at all
    assert default.column("lift_abs").null_count == 2


def test_empty_table():
    result = evaluate_strict(table([]))
    assert result.num_rows == 0
    assert result.column_names[-len(OUTPUT_COLUMNS) :] == list(OUTPUT_COLUMNS)


def test_duckdb_decimal_sums_give_the_same_result():
    """DuckDB's SUM(BIGINT) is HUGEINT, which reaches Arrow as decimal128(38, 0)."""
    rng = np.random.default_rng(11)
    ints = table([row("e", "control", *simulate(rng, 100)), row("e", "t", *simulate(rng, 90))])
    decimals = ints.cast(
        pa.schema(
            [
                f.with_type(pa.decimal128(38, 0)) if f.name in COUNT_COLUMNS else f
                for f in ints.schema
            ]
        )
    )
    got = evaluate_strict(decimals).select(list(OUTPUT_COLUMNS))
    assert got.equals(evaluate_strict(ints).select(list(OUTPUT_COLUMNS)))


@pytest.mark.parametrize(
    "split",
    [
        {"control": 0.5, "t": 0.4},  # sums to 0.9
        {"control": 0.5, "t": 0.5 + 1e-8},  # outside the 1e-9 tolerance
        {"control": 1.0},  # misses t
        {"control": 0.0, "t": 1.0},  # a present bucket cannot have share 0
    ],
)
def test_bad_splits_name_the_experiment(split: dict[str, float]):
    buckets = srm_table("exp-42", {"control": 100, "t": 100})
    with pytest.raises(ValueError, match=r"'exp-42'.*set splits\['exp-42'\]"):
        evaluate(buckets, splits={"exp-42": split})


def test_a_configured_bucket_without_traffic_is_a_sample_ratio_mismatch():
    buckets = srm_table("exp-42", {"control": 100, "t": 100})
    result = evaluate_strict(buckets, splits={"exp-42": {"control": 0.4, "t": 0.4, "t9": 0.2}})
    # t9 observed 0 of an expected 40: chi2 = 2 * (100 - 80)^2 / 80 + 40 = 50 on 2 degrees.
    assert result.column("srm_chi2").to_pylist() == pytest.approx([50.0, 50.0])
    expected_p = stats.chisquare([100, 100, 0], f_exp=[80, 80, 40]).pvalue
    assert result.column("srm_p_value").to_pylist() == pytest.approx([expected_p] * 2)
    assert expected_p < 1e-10


def test_splits_within_tolerance_and_for_other_experiments_are_accepted():
    buckets = srm_table("e", {"control": 100, "t": 100})
    result = evaluate_strict(
        buckets, splits={"e": {"control": 0.5, "t": 0.5 + 5e-10}, "not-running": {"x": 1.0}}
    )
    assert result.column("srm_chi2").to_pylist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_malformed_input_is_rejected():
    rng = np.random.default_rng(5)
    good = row("e", "control", *simulate(rng, 50))
    with pytest.raises(ValueError, match="missing columns: clicks_sq"):
        evaluate(table([good]).drop_columns(["clicks_sq"]))
    with pytest.raises(ValueError, match="duplicate"):
        evaluate(table([good, good]))
    with pytest.raises(ValueError, match="confidence"):
        evaluate(table([good]), confidence=1.0)
    with pytest.raises(ValueError, match="inconsistent"):
        evaluate(table([{**good, "clicks_impressions": 10**6}]))
    with pytest.raises(ValueError, match="negative"):
        evaluate(table([{**good, "clicks": -1}]))
    with pytest.raises(ValueError, match="must not be null"):
        evaluate(table([{**good, "bucket": None}]))


requests_strategy = st.lists(
    st.integers(1, 30).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(control=requests_strategy, treatment=requests_strategy)
def test_any_requests_give_finite_values_or_nulls(control, treatment):
    """Arbitrary small buckets, degenerate ones included: no NaN/inf, no warnings, se = np.cov."""
    arrays = {}
    for bucket, requests in (("control", control), ("t", treatment)):
        arrays[bucket] = (
            np.array([n for n, _ in requests], dtype=np.int64),
            np.array([c for _, c in requests], dtype=np.int64),
        )
    result = evaluate_strict(table([row("e", b, n, c) for b, (n, c) in arrays.items()]))
    assert_no_nan(result)
    for got, (n, c) in zip(result.to_pylist(), arrays.values(), strict=True):
        if len(n) < 2:
            assert got["ctr_se"] is None
            continue
        r, var = reference(n, c)
        scale = (np.var(c, ddof=1) + r * r * np.var(n, ddof=1)) / (len(n) * n.mean() ** 2)
        assert got["ctr"] == pytest.approx(r, rel=RTOL)
        assert got["ctr_se"] ** 2 == pytest.approx(var, rel=RTOL, abs=1e-12 * scale)
