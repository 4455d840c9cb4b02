"""Event rows as a consumer pinned to an older schema version sees them.

Event tables are stored in the current version's shape. Within a major version the current shape
only adds columns (``pipelines/lib/schemas/changes.py``), so any accepted version's shape is the
current table with the newer columns left out: its fields in its own order, then the columns
ingest adds to every row. ``schema_version`` keeps the version each producer sent. The catalog
offers the same projection as views (``events.ranking_v1_0_0``: ``catalog.view_specs``).
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lib.schemas.registry import accepted_versions
from pipelines.lib.schemas.stored_shape import ADDED_COLUMNS, version_tag

# Hive partition columns a reader may have added (``hive_partitioning``); kept when present.
PARTITION_COLUMNS = ("event_date",)


def downgrade_columns(event_type: str, version: str) -> list[str]:
    """The columns of ``event_type``'s table that ``version`` knows, in its order."""
    accepted = {s.version: s for s in accepted_versions().get(event_type, [])}
    if version not in accepted:
        raise ValueError(
            f"{event_type} cannot be shown as version {version}: its table holds the versions "
            f"{sorted(accepted) or 'none'} (an older major's fields no longer exist)"
        )
    return [*accepted[version].properties, *ADDED_COLUMNS]


def downgrade(table: pa.Table, event_type: str, version: str) -> pa.Table:
    """``table`` (rows of ``event_type`` as stored) with only the columns ``version`` knows."""
    columns = downgrade_columns(event_type, version)
    fields = columns[: -len(ADDED_COLUMNS)]
    missing = [c for c in fields if c not in table.column_names]
    if missing:
        raise ValueError(f"the table lacks the fields of {event_type} {version}: {missing}")
    # Tables read from partitions written before a lineage column existed lack it.
    kept = [c for c in (*columns, *PARTITION_COLUMNS) if c in table.column_names]
    return table.select(kept)


def downgrade_view_name(event_type: str, version: str) -> str:
    return f"{event_type}_{version_tag(version)}"
