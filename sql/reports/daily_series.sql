-- Grain: one row per day (event_date) of the traffic_daily partitions given: their all-traffic
--   rows, for the trend charts. A day without a partition is absent (a gap in the chart).
-- Parameters: $files (the traffic_daily Parquet files of the days wanted).
with

traffic as (
    select
        is_all_traffic,
        period_start as event_date,
        requests,
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
order by event_date
