-- Grain: one row per (event_type, lag_days): how many of day $day's events landed lag_days after
--   their event date (negative: a client clock ahead; above 2: quarantined as late_arrival).
-- Parameters: $day (the partition).
-- Inputs: views day_events (the valid rows of $day, every type) and later_quarantine (the
--   quarantine of the partitions after $day + 2, where ingest puts lines that came too late).
with

valid as (
    select
        event_type,
        landing_dt
    from day_events
),

late as (
    select
        event_type,
        landing_dt
    from later_quarantine
    where reason = 'late_arrival' and event_date_read = $day
),

landed as (
    select * from valid
    union all
    select * from late
),

final as (
    select
        coalesce(event_type, 'unknown') as event_type,
        date_diff('day', $day, landing_dt) as lag_days,
        count(*) as events
    from landed
    group by all
)

select * from final
order by all
