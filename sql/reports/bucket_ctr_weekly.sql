-- Grain: one row per (experiment_id, bucket) of one week's experiments_weekly: CTR with its
--   95% delta-method interval, the lift against control and the sample-ratio test, as stored.
-- Parameters: $files (the week's experiments_weekly Parquet files).
with

evaluation as (
    select
        experiment_id,
        bucket,
        users_assigned,
        requests,
        impressions,
        clicks,
        ctr,
        ctr_ci_low,
        ctr_ci_high,
        lift_rel,
        p_value,
        srm_p_value
    from read_parquet($files, hive_partitioning = false)
),

final as (
    select *
    from evaluation
)

select * from final
order by experiment_id, bucket
