-- Grain: one row per day of $period_start..$period_end that has an all-traffic row in
--   traffic_daily or a ledger: the whole day's SLO metrics (traffic, CTR, errors, latency
--   percentiles from the rollup; lines read, quarantined and landed late from the ledger). A
--   metric is null when its day has no data for it (no rollup, no ledger, a zero denominator).
-- Parameters: $period_start, $period_end (dates, inclusive: the days read).
-- Inputs: views daily_traffic (rollups/traffic_daily) and daily_ledger (ledger/), each with the
--   event_date of its partition folder; macro ledger_days (macros.sql).
with

traffic as (
    select
        event_date,
        requests,
        impressions,
        clicks,
        errors,
        rankings,
        ctr,
        error_rate,
        latency_p95_ms,
        latency_p99_ms
    from daily_traffic
    where is_all_traffic and event_date between $period_start and $period_end
),

ledger as (
    -- The day's sums over the landing files it read, as quarantine_slices.sql takes them.
    select
        event_date,
        lines_read,
        quarantined,
        rows_written,
        rows_landed_late
    from ledger_days('daily_ledger', $period_start, $period_end)
),

joined as (
    select
        t.requests,
        t.impressions,
        t.clicks,
        t.errors,
        t.rankings,
        t.ctr,
        t.error_rate,
        t.latency_p95_ms,
        t.latency_p99_ms,
        l.lines_read,
        l.quarantined,
        l.rows_written,
        l.rows_landed_late,
        coalesce(t.event_date, l.event_date) as event_date
    from traffic as t
    full outer join ledger as l on t.event_date = l.event_date
),

final as (
    select
        *,
        quarantined / nullif(lines_read, 0) as quarantine_share,
        rows_landed_late / nullif(rows_written, 0) as late_share
    from joined
)

select * from final
order by event_date
