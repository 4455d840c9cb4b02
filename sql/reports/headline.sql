-- Grain: one row: the all-traffic row of one traffic rollup partition (traffic_daily of a day or
--   traffic_weekly of a week), the numbers a report leads with.
-- Parameters: $files (the partition's Parquet files).
with

traffic as (
    select
        is_all_traffic,
        period_start,
        period_end,
        requests,
        impressions,
        clicks,
        errors,
        distinct_users,
        ctr,
        error_rate,
        latency_p50_ms,
        latency_p95_ms,
        latency_p99_ms
    from read_parquet($files, hive_partitioning = false)
),

final as (
    select * exclude (is_all_traffic)
    from traffic
    where is_all_traffic
)

select * from final
