-- Grain: one row per line of day $day that landed after the ingest window (a timeliness
--   violation; the line itself is in the quarantine of its arrival date).
-- Parameters: $day (the partition).
-- Inputs: view later_quarantine (the quarantine of the partitions after $day + 2).
with

late as (
    select
        event_type,
        event_id,
        landing_dt,
        landing_file,
        line_no
    from later_quarantine
    where reason = 'late_arrival' and event_date_read = $day
),

final as (
    select
        'landed_in_window' as rule,
        event_id,
        null::varchar as request_id,
        coalesce(event_type, 'unknown') as event_type,
        'landed on ' || landing_dt || ' (' || date_diff('day', $day, landing_dt)
        || ' days after), ' || landing_file || ' line ' || line_no as detail
    from late
)

select * from final
