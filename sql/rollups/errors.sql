-- Grain: one row per (component, severity, error_code) seen in the period.
-- Parameters: $period_start, $period_end (dates, inclusive; the daily rollup: one day).
-- Inputs: view error over the period's days.
-- distinct_users counts the errors' own hashed user_id (an error without one adds none): the
--   users a row covers, which the viewer tier's small-cell rule (lib/catalog/tiers.py) withholds
--   by.
with

errors as (
    select
        component,
        severity,
        error_code,
        request_id,
        user_id,
        timestamp_ms
    from error
    where event_date between $period_start and $period_end
),

codes as (
    select
        component,
        severity,
        error_code,
        count(*) as errors,
        count(distinct request_id) as distinct_requests,
        count(distinct user_id) as distinct_users,
        make_timestamp(min(timestamp_ms) * 1000) as first_seen,
        make_timestamp(max(timestamp_ms) * 1000) as last_seen
    from errors
    group by component, severity, error_code
),

final as (
    select
        *,
        -- The taxonomy's top codes: rank 1 is the most frequent code of the period.
        rank() over (order by errors desc) as rank_by_count
    from codes
)

select * from final
order by rank_by_count, component, severity, error_code
