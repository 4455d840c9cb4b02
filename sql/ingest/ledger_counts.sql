-- Grain: one row per (landing file, fate, event type, reason) among the partition's lines.
-- Parameters: $day (the partition), to count rows that landed after their own date.
with

lines as (
    select
        file_id,
        fate,
        event_type,
        reason,
        landing_dt
    from fates
),

final as (
    select
        file_id,
        fate,
        event_type,
        reason,
        count(*) as line_count,
        count(*) filter (where fate = 'row' and landing_dt > $day) as rows_landed_late
    from lines
    group by file_id, fate, event_type, reason
)

select * from final
order by all
