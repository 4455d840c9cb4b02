"""Weekly A/B evaluation of CTR from per-bucket sufficient statistics.

Upstream SQL reduces each (experiment_id, bucket) to sums over its *exposed requests* (requests
with at least one impression): ``requests`` m, ``impressions`` N = Σnᵢ, ``clicks`` C = Σcᵢ,
``impressions_sq`` Σnᵢ², ``clicks_sq`` Σcᵢ² and ``clicks_impressions`` Σcᵢnᵢ. That is enough
for everything here, so the lake never has to ship request-level rows to the evaluation.

Why the delta method: clicks on the impressions of one request are correlated (same user, same
slate), so CTR = C/N is a ratio of two per-request means, not a binomial proportion, and the naive
√(p(1-p)/N) understates its error. With R = C/N, n̄ = N/m and sample (co)variances (denominator
m-1) of cᵢ and nᵢ:

    Var(R) ≈ (var_c - 2·R·cov_cn + R²·var_n) / (m·n̄²)

Because C - R·N = 0, the numerator is Σ(cᵢ - R·nᵢ)² / (m-1), and so
``Var(R) = m · Σ(N·cᵢ - C·nᵢ)² / ((m-1)·N⁴)`` where ``Σ(N·cᵢ - C·nᵢ)² = N²Σcᵢ² - 2CNΣcᵢnᵢ +
C²Σnᵢ²``. That sum is evaluated in exact integer arithmetic (Python ints), so a bucket whose
requests all have the same ratio gets a variance of exactly zero instead of ±1e-12 rounding
noise that would turn into a confident p-value, and large weekly sums lose no precision to
cancellation. A negative value is impossible for real data and raises ValueError.

Against the experiment's control bucket (independent groups):

* ``lift_abs = R_b - R_c`` with Var = Var_b + Var_c; ``p_value`` is the two-sided z-test of
  ``lift_abs = 0``.
* ``lift_rel = R_b/R_c - 1`` with Var ≈ (R_b/R_c)²·(Var_b/R_b² + Var_c/R_c²), computed in the
  algebraically equal form Var_b/R_c² + R_b²·Var_c/R_c⁴ so that R_b = 0 is not a division by 0.

Intervals are normal (Wald) intervals ``estimate ± z·se`` at ``confidence``; they are not clipped
to [0, 1], so a bound outside it says the normal approximation is strained there.

Sample-ratio mismatch (SRM): Pearson χ² of the observed counts per bucket (``srm_counts``:
``requests`` by default; the weekly rollup passes the users assigned: users are the unit of
randomisation, and a treatment can change which requests are exposed) against
total·expected_share, with k-1 degrees of freedom for k buckets; the same value is written on every
row of the experiment. Expected shares come from ``splits[experiment_id]`` or default to equal
shares across the buckets present. A configured bucket with no row got no traffic: it counts with
0 observed (and towards k). Splits for experiments absent from the table are ignored (a config may
list more experiments than ran this week).

Undefined values are null (never NaN or ±inf), and evaluation emits no numpy warnings:

* N = 0 (including m = 0, e.g. a left-joined bucket with no exposures): ``ctr`` and all that
  depends on it are null. Null inputs in the count columns are read as 0 for this reason (SQL
  ``SUM`` over no rows is NULL); the bucket still counts towards SRM, where 0 requests is exactly
  the kind of mismatch SRM should flag.
* m = 1: ``ctr`` and the point lifts are reported, but ``ctr_se`` and every interval and p-value
  that needs it are null (a variance needs two requests).
* Zero variance (e.g. a bucket with no clicks yet): ``ctr_se`` is reported as 0.0, but an interval
  or p-value whose variance is exactly 0 is null, since a zero-width interval or p = 0 would claim
  a certainty the delta method cannot give on such data. A zero-variance bucket against a control
  with positive variance still gets a lift interval and p-value.
* ``ctr`` of the control = 0: ``lift_rel`` and its interval are null (``lift_abs`` is not).
* The control row itself, and every row of an experiment with no control bucket: all lift
  columns and ``p_value`` are null.
* Fewer than 2 buckets in an experiment, or 0 requests in total: ``srm_chi2`` and
  ``srm_p_value`` are null (there is no ratio to mismatch).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_COLUMNS = ("experiment_id", "bucket")
COUNT_COLUMNS = (
    "requests",
    "impressions",
    "clicks",
    "impressions_sq",
    "clicks_sq",
    "clicks_impressions",
)
OUTPUT_COLUMNS = (
    "ctr",
    "ctr_se",
    "ctr_ci_low",
    "ctr_ci_high",
    "lift_abs",
    "lift_abs_ci_low",
    "lift_abs_ci_high",
    "lift_rel",
    "lift_rel_ci_low",
    "lift_rel_ci_high",
    "p_value",
    "expected_share",
    "srm_chi2",
    "srm_p_value",
)
SPLIT_SUM_TOLERANCE = 1e-9


def evaluate(
    buckets: pa.Table,
    *,
    control: str = "control",
    splits: Mapping[str, Mapping[str, float]] | None = None,
    confidence: float = 0.95,
    srm_counts: str = "requests",
) -> pa.Table:
    """Return ``buckets`` with CTR, its delta-method error, lifts vs ``control`` and SRM appended.

    One row per (experiment_id, bucket); see the module docstring for the formulas and for which
    values are null. Raises ValueError on malformed input (missing columns, null keys, duplicate
    buckets, negative or inconsistent sums) and on ``splits`` that do not match the buckets.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    _check_columns(buckets)
    experiments = buckets.column("experiment_id").to_pylist()
    bucket_names = buckets.column("bucket").to_pylist()
    if None in experiments or None in bucket_names:
        raise ValueError("experiment_id and bucket must not be null")
    counts = {
        name: pc.fill_null(pc.cast(buckets.column(name), pa.int64()), 0).to_numpy()
        for name in COUNT_COLUMNS
    }
    if any((values < 0).any() for values in counts.values()):
        raise ValueError(f"{', '.join(COUNT_COLUMNS)} must not be negative")

    exp_ids, codes = np.unique(np.asarray(experiments, dtype=object), return_inverse=True)
    control_row = _control_rows(codes, bucket_names, len(exp_ids), control, experiments)

    ctr = _div(counts["clicks"], counts["impressions"])
    var = _ctr_variance(counts, experiments, bucket_names)
    # scipy is imported where it is used: loading the code location (every command-line run and
    # step process) would otherwise pay for it.
    from scipy import special

    z = float(special.ndtri(0.5 + confidence / 2.0))

    has_control = (control_row >= 0) & (control_row != np.arange(len(codes)))
    safe_row = np.where(has_control, control_row, 0)
    ctr_c = np.where(has_control, ctr[safe_row], np.nan)
    var_c = np.where(has_control, var[safe_row], np.nan)

    lift_abs = ctr - ctr_c
    se_abs = np.sqrt(var + var_c)
    lift_rel = np.where(ctr_c > 0, _div(ctr, ctr_c) - 1.0, np.nan)
    ctr_c_sq = ctr_c * ctr_c
    se_rel = np.sqrt(_div(var, ctr_c_sq) + _div(ctr * ctr * var_c, ctr_c_sq * ctr_c_sq))
    p_value = 2.0 * special.ndtr(-np.abs(_div(lift_abs, se_abs)))  # NaN when se_abs is 0

    se = np.sqrt(var)
    # SRM is judged on what was randomised (a treatment may change which requests get exposed).
    if srm_counts not in buckets.column_names:
        raise ValueError(f"srm_counts names no column of buckets: {srm_counts!r}")
    observed = pc.fill_null(pc.cast(buckets.column(srm_counts), pa.int64()), 0).to_numpy()
    share, chi2, srm_p = _srm(codes, exp_ids, bucket_names, observed, splits)

    values = {
        "ctr": ctr,
        "ctr_se": se,
        "ctr_ci_low": _interval(ctr, se, -z),
        "ctr_ci_high": _interval(ctr, se, z),
        "lift_abs": lift_abs,
        "lift_abs_ci_low": _interval(lift_abs, se_abs, -z),
        "lift_abs_ci_high": _interval(lift_abs, se_abs, z),
        "lift_rel": lift_rel,
        "lift_rel_ci_low": _interval(lift_rel, se_rel, -z),
        "lift_rel_ci_high": _interval(lift_rel, se_rel, z),
        "p_value": p_value,
        "expected_share": share,
        "srm_chi2": chi2,
        "srm_p_value": srm_p,
    }
    out = buckets
    for name in OUTPUT_COLUMNS:
        out = out.append_column(name, _to_arrow(values[name]))
    return out


def _check_columns(buckets: pa.Table) -> None:
    missing = [c for c in (*KEY_COLUMNS, *COUNT_COLUMNS) if c not in buckets.column_names]
    if missing:
        raise ValueError(f"buckets table is missing columns: {', '.join(missing)}")
    clashing = [c for c in OUTPUT_COLUMNS if c in buckets.column_names]
    if clashing:
        raise ValueError(f"buckets table already has output columns: {', '.join(clashing)}")


def _control_rows(
    codes: np.ndarray, bucket_names: list[str], n_exp: int, control: str, experiments: list[str]
) -> np.ndarray:
    """Row index of each row's control bucket, -1 when its experiment has none."""
    seen = Counter(zip(experiments, bucket_names, strict=True))
    dupes = sorted(pair for pair, n in seen.items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate (experiment_id, bucket) rows: {dupes}")
    by_exp = np.full(n_exp, -1, dtype=np.int64)
    is_control = np.asarray(bucket_names, dtype=object) == control
    by_exp[codes[is_control]] = np.flatnonzero(is_control)
    return by_exp[codes]


def _ctr_variance(
    counts: Mapping[str, np.ndarray], experiments: list[str], bucket_names: list[str]
) -> np.ndarray:
    """Delta-method Var(C/N), via the exact integer residual sum Σ(N·cᵢ - C·nᵢ)² (see module)."""
    m, n, c, n2, c2, cn = (counts[name].astype(object) for name in COUNT_COLUMNS)
    residual = n * n * c2 - 2 * c * n * cn + c * c * n2
    bad = np.flatnonzero(np.asarray(residual < 0, dtype=bool))
    if len(bad):
        rows = [(experiments[i], bucket_names[i]) for i in bad]
        raise ValueError(f"inconsistent sums (they imply Σ(N·cᵢ - C·nᵢ)² < 0) for rows {rows}")
    ok = (counts["requests"] >= 2) & (counts["impressions"] > 0)
    var = np.full(len(ok), np.nan)
    # Python-int true division is correctly rounded however large the operands get.
    var[ok] = (m[ok] * residual[ok] / ((m[ok] - 1) * n[ok] ** 4)).astype(np.float64)
    return var


def _srm(
    codes: np.ndarray,
    exp_ids: np.ndarray,
    bucket_names: list[str],
    requests: np.ndarray,
    splits: Mapping[str, Mapping[str, float]] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected share per row, and the experiment's Pearson χ² and its p-value per row."""
    k = np.bincount(codes, minlength=len(exp_ids))
    share = 1.0 / k[codes]
    # A configured bucket with no row got no traffic at all: the starkest mismatch. It counts
    # with 0 observed, adding (0 - total*share)^2 / (total*share) = total*share to chi-square.
    absent_share = np.zeros(len(exp_ids))
    absent_k = np.zeros(len(exp_ids), dtype=np.int64)
    for code, exp in enumerate(exp_ids):
        if splits is None or exp not in splits:
            continue
        rows = np.flatnonzero(codes == code)
        present = [bucket_names[i] for i in rows]
        configured = _checked_split(exp, splits[exp], present)
        share[rows] = [configured[bucket_names[i]] for i in rows]
        absent = [b for b in configured if b not in present]
        absent_share[code] = math.fsum(configured[b] for b in absent)
        absent_k[code] = len(absent)

    observed = requests.astype(np.float64)
    total = np.bincount(codes, weights=observed, minlength=len(exp_ids))
    expected = total[codes] * share
    terms = _div((observed - expected) ** 2, expected)
    chi2 = np.bincount(codes, weights=terms, minlength=len(exp_ids)) + total * absent_share
    k = k + absent_k
    defined = (k >= 2) & (total > 0)
    chi2 = np.where(defined, chi2, np.nan)
    # chdtrc is the chi-square survival function (what scipy.stats.chi2.sf calls); scipy.stats
    # alone takes about 0.5 s to import.
    from scipy import special

    p = np.where(defined, special.chdtrc(np.maximum(k - 1, 1), chi2), np.nan)
    return share, chi2[codes], p[codes]


def _checked_split(exp: str, split: Mapping[str, float], present: list[str]) -> dict[str, float]:
    """The configured shares of one experiment, if they cover every bucket in the data (a
    configured bucket absent from the data is one that got no traffic)."""
    how = f"set splits[{exp!r}] to {{bucket: share}} for at least {sorted(present)}, summing to 1"
    missing = sorted(set(present) - set(split))
    if missing:
        raise ValueError(
            f"splits for experiment {exp!r} do not cover its buckets (missing {missing}); {how}"
        )
    shares = {bucket: float(share) for bucket, share in split.items()}
    if not all(math.isfinite(s) and 0.0 < s <= 1.0 for s in shares.values()):
        raise ValueError(f"splits for experiment {exp!r} must be shares in (0, 1]; {how}")
    total = math.fsum(shares.values())
    if abs(total - 1.0) > SPLIT_SUM_TOLERANCE:
        raise ValueError(f"splits for experiment {exp!r} sum to {total!r}, not 1; {how}")
    return shares


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den, NaN where den is 0 or NaN: undefined without numpy's divide warnings."""
    num, den = np.broadcast_arrays(np.asarray(num, np.float64), np.asarray(den, np.float64))
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den != 0)


def _interval(estimate: np.ndarray, se: np.ndarray, z: float) -> np.ndarray:
    """One bound of estimate ± z·se; NaN unless se > 0 (see module on zero-width intervals)."""
    return np.where(se > 0, estimate + z * se, np.nan)


def _to_arrow(values: np.ndarray) -> pa.Array:
    """float64 column with every non-finite value as null."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, type=pa.float64(), mask=~np.isfinite(values))
