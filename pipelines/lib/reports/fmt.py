"""The reports' one rounding rule: every number shown is formatted here, from the rollup's
unrounded value, so a report, its Markdown and its charts always agree with each other and with
the Parquet they were read from."""

from __future__ import annotations

from collections.abc import Callable

ROUNDING_RULE = (
    "Counts are exact. Latencies are in milliseconds with 1 decimal; CTR, error rate, shares "
    "and lifts are percentages with 2 decimals; p-values have 4 decimals; error budget burn has 2 "
    "decimals (0.65x); z-scores and the health score have 1 decimal. Each is rounded once, from "
    "the rollup's unrounded value (Python's format: the nearest decimal, ties to even)."
)
MISSING = "–"  # an en dash reads as "no value"; a hyphen would read as a minus sign


def count(value: int | None) -> str:
    return MISSING if value is None else str(int(value))


def _rounded(template: str, scale: int = 1) -> Callable[[float | None], str]:
    """A formatter of ``value`` (times ``scale``) by ``template``, MISSING for no value: the
    formatters below differ only in these two."""

    def formatted(value: float | None) -> str:
        return MISSING if value is None else template.format(scale * value)

    return formatted


ms = _rounded("{:.1f} ms")
percent = _rounded("{:.2f}%", scale=100)
signed_percent = _rounded("{:+.2f}%", scale=100)
burn = _rounded("{:.2f}x")  # an error budget's burn against its pace (1.00x: on pace)
p_value = _rounded("{:.4f}")
one_decimal = _rounded("{:.1f}")


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return MISSING
    return f"[{percent(low)}, {percent(high)}]"


def metric(name: str, value: float | None) -> str:
    """A metric by its name's unit: ``*_ms`` in milliseconds, rates, shares and CTR as
    percentages, anything else (a count) exact."""
    if name.endswith("_ms"):
        return ms(value)
    if name == "ctr" or name.endswith(("_rate", "_share")):
        return percent(value)
    if value is not None and float(value).is_integer():
        return count(int(value))
    return one_decimal(value)
