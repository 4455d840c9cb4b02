-- Grain: one row per (event_date, reason) of $period_start..$period_end with a quarantined
--   line: the reason's share of the day's lines read (a day's shares add up to its
--   quarantine_share in daily_metrics.sql).
-- Parameters: $period_start, $period_end (dates, inclusive: the days read).
-- Inputs: views daily_quarantine (quarantine/) and daily_ledger (ledger/), each with the
--   event_date of its partition folder; macro ledger_days (macros.sql).
with

quarantined as (
    select
        event_date,
        reason,
        count(*) as lines_quarantined
    from daily_quarantine
    where event_date between $period_start and $period_end
    group by event_date, reason
),

lines_read as (
    -- The lines read of daily_metrics.sql's quarantine_share, which the shares add up to.
    select
        event_date,
        lines_read
    from ledger_days('daily_ledger', $period_start, $period_end)
),

final as (
    select
        q.event_date,
        'reason' as dimension,
        q.reason as slice_value,
        q.lines_quarantined,
        'reason=' || q.reason as slice,
        q.lines_quarantined / nullif(r.lines_read, 0) as quarantine_share
    from quarantined as q
    inner join lines_read as r on q.event_date = r.event_date
)

select * from final
order by event_date, slice
