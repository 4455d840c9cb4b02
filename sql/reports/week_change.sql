-- Grain: one row: the all-traffic row of traffic_weekly, each headline metric's change against
--   the previous week ((this - previous) / previous; null without a previous week).
-- Parameters: $files (the week's traffic_weekly Parquet files).
with

traffic as (
    select
        is_all_traffic,
        requests_change,
        impressions_change,
        clicks_change,
        errors_change,
        distinct_users_change,
        ctr_change,
        error_rate_change,
        latency_p50_ms_change,
        latency_p95_ms_change,
        latency_p99_ms_change
    from read_parquet($files, hive_partitioning = false)
),

final as (
    select * exclude (is_all_traffic)
    from traffic
    where is_all_traffic
)

select * from final
