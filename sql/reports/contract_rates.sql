-- Grain: one row per (event_date, family): the share of the day's events that hold the family's
--   contracts, as a percentage with two decimals, and how many broke them.
-- Parameters: $quality_glob (e.g. '<root>/quality/*/*.parquet').
with

quality as (
    select
        event_date,
        family,
        checked,
        failed
    from read_parquet($quality_glob, hive_partitioning = false)
    where scope = 'family'
),

final as (
    select
        event_date,
        family,
        -- Truncated, not rounded (a day with any failure never shows 100.00%), in integers so
        -- an exact share is not shaved by binary floating point.
        printf(
            '%.2f%% (%d)',
            coalesce((checked - failed) * 10000 // nullif(checked, 0), 10000) / 100,
            failed
        ) as rate_and_failed
    from quality
)

select * from final
order by event_date, family
