-- Grain: one row per UTC hour of the day with any event (traffic_hourly of one day).
-- Parameters: $files (the day's traffic_hourly Parquet files).
with

hours as (
    select
        hour_start,
        requests,
        errors,
        latency_p95_ms
    from read_parquet($files, hive_partitioning = false)
),

final as (
    select
        hour_start,
        requests,
        errors,
        latency_p95_ms
    from hours
)

select * from final
order by hour_start
