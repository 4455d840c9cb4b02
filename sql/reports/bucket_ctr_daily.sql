-- Grain: one row per (experiment_id, bucket) of one day's traffic_daily, summed over its
--   surface and device type rows: impressions, clicks and CTR (clicks / impressions, as the
--   rollup defines it) with a 95% Wilson score interval over the impressions.
-- The binomial interval ignores that clicks cluster by request, so it is narrower than the
--   delta-method interval of experiments_weekly: a daily screen, not an experiment's readout.
-- Parameters: $files (the day's traffic_daily Parquet files).
with

traffic as (
    select
        is_all_traffic,
        experiment_id,
        bucket,
        impressions,
        clicks
    from read_parquet($files, hive_partitioning = false)
),

buckets as (
    select
        experiment_id,
        bucket,
        sum(impressions)::bigint as impressions,
        sum(clicks)::bigint as clicks
    from traffic
    where not is_all_traffic and experiment_id is not null
    group by experiment_id, bucket
),

rates as (
    select
        experiment_id,
        bucket,
        impressions,
        clicks,
        -- The standard normal quantile of a two-sided 95% interval.
        1.959963984540054 as z,
        clicks / nullif(impressions, 0) as ctr
    from buckets
),

final as (
    select
        experiment_id,
        bucket,
        impressions,
        clicks,
        ctr,
        (
            ctr + z * z / (2 * impressions)
            - z * sqrt(ctr * (1 - ctr) / impressions + z * z / (4 * impressions * impressions))
        ) / (1 + z * z / impressions) as ctr_ci_low,
        (
            ctr + z * z / (2 * impressions)
            + z * sqrt(ctr * (1 - ctr) / impressions + z * z / (4 * impressions * impressions))
        ) / (1 + z * z / impressions) as ctr_ci_high
    from rates
)

select * from final
order by experiment_id, bucket
