-- Grain: one row per (week_start, experiment_id, bucket) of the weekly experiment evaluation,
--   rounded for reading.
-- Parameters: $experiments_glob (e.g. '<root>/rollups/experiments_weekly/*/*.parquet').
with

evaluation as (
    select
        week_start,
        experiment_id,
        bucket,
        requests,
        ctr,
        ctr_ci_low,
        ctr_ci_high,
        lift_rel,
        p_value,
        srm_p_value
    from read_parquet($experiments_glob, hive_partitioning = true)
),

final as (
    select
        week_start,
        experiment_id,
        bucket,
        requests,
        printf('%.4f [%.4f, %.4f]', ctr, ctr_ci_low, ctr_ci_high) as ctr_95,
        coalesce(printf('%+.1f%%', 100 * lift_rel), '-') as lift,
        coalesce(printf('%.3f', p_value), '-') as p_value,
        printf('%.3f', srm_p_value) as srm_p_value
    from evaluation
)

select * from final
order by week_start, experiment_id, bucket
