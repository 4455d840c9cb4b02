-- A partition's rows in compaction order, so row-group statistics on request_id prune lookups.
-- Grain: one row per event of the partition, every column as stored (whatever the schema).
-- Parameters: $files, the URLs of every Parquet file of the partition.
-- request_id first (nulls last: error events may have none), then timestamp_ms, then event_id
-- (unique after ingest's dedup), so the order, and the files written from it, are deterministic.
-- select *: a rewrite keeps every column of the table, whichever they are.
select *  -- noqa: AM04
from read_parquet($files, hive_partitioning = false, union_by_name = true)
order by request_id asc nulls last, timestamp_ms asc, event_id asc
