"""Period-over-period change of every metric of a rollup, matched row by row on its dimensions.

Column-wise in Arrow rather than SQL: DuckDB cannot pair two COLUMNS(*) lists in one expression,
and spelling out every metric twice would let the list drift from the rollup's columns."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_NULL_KEY = "\x00"  # a null dimension ("all", or unknown) is a value of its own when matching


def _row_keys(table: pa.Table, keys: list[str]) -> pa.Array:
    parts = [pc.fill_null(pc.cast(table[k], pa.string()), _NULL_KEY) for k in keys]
    return pc.binary_join_element_wise(*parts, "\x1f")


def with_change(
    current: pa.Table, previous: pa.Table | None, keys: list[str], metrics: list[str]
) -> pa.Table:
    """``current`` plus ``<metric>_change``: (this - previous) / previous for the row of
    ``previous`` with the same ``keys``; null without such a row or where previous is 0."""
    if previous is not None and previous.num_rows:
        where = pc.index_in(_row_keys(current, keys), value_set=_row_keys(previous, keys))
    else:
        where = pa.nulls(current.num_rows, pa.int32())
    out = current
    for name in metrics:
        now = pc.cast(current[name], pa.float64())
        if previous is not None and previous.num_rows:
            before = pc.cast(pc.take(previous[name], where), pa.float64())
        else:
            before = pa.nulls(current.num_rows, pa.float64())
        before = pc.if_else(pc.equal(before, 0.0), pa.scalar(None, pa.float64()), before)
        out = out.append_column(f"{name}_change", pc.divide(pc.subtract(now, before), before))
    return out
