-- Grain: one row per (component, severity, error_code) of the errors_daily partitions given
--   (one day, or a week's days), its errors summed and its share of all of them.
-- Parameters: $files (the errors_daily Parquet files of the period's days).
with

codes as (
    select
        component,
        severity,
        error_code,
        errors
    from read_parquet($files, hive_partitioning = false)
),

totals as (
    select
        component,
        severity,
        error_code,
        sum(errors)::bigint as errors
    from codes
    group by component, severity, error_code
),

final as (
    select
        component,
        severity,
        error_code,
        errors,
        errors / sum(errors) over () as error_share
    from totals
)

select * from final
order by errors desc, component asc, severity asc, error_code asc
