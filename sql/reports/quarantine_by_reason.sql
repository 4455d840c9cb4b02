-- Grain: one row per (event_date, reason): lines held in quarantine/.
-- Parameters: $quarantine_glob (e.g. '<root>/quarantine/*/*.parquet').
with

quarantined as (
    select
        event_date,
        reason
    from read_parquet(
        $quarantine_glob,
        hive_partitioning = true,
        hive_types = { 'event_date': date }
    )
),

final as (
    select
        event_date,
        reason,
        count(*) as line_count
    from quarantined
    group by event_date, reason
)

select * from final
order by event_date, reason
