-- Grain: one row per (event_date, event_type): the rows stored in events/.
-- Parameters: $events_glob (e.g. '<root>/events/*/*/*.parquet').
with

events as (
    select
        event_date,
        event_type
    from read_parquet(
        $events_glob,
        hive_partitioning = true,
        hive_types = { 'event_type': varchar, 'event_date': date }
    )
),

final as (
    select
        event_date,
        event_type,
        count(*) as row_count
    from events
    group by event_date, event_type
)

select * from final
order by event_date, event_type
