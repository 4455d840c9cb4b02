-- Grain: one row per UTC hour of the period that has any event (hour_start, a timestamp).
-- Parameters: $period_start, $period_end (dates, inclusive; the daily rollup: one day).
-- Inputs: views request, ranking, impression, click, error over the period's days.
-- distinct_users counts every event's hashed user_id: the users a row covers, which the viewer
--   tier's small-cell rule (lib/catalog/tiers.py) withholds rows by.
with

events as (
    select
        'request' as event_type,
        timestamp_ms,
        user_id,
        null::double as latency_ms
    from request
    where event_date between $period_start and $period_end
    union all
    select
        'ranking' as event_type,
        timestamp_ms,
        user_id,
        latency_ms
    from ranking
    where event_date between $period_start and $period_end
    union all
    select
        'impression' as event_type,
        timestamp_ms,
        user_id,
        null::double as latency_ms
    from impression
    where event_date between $period_start and $period_end
    union all
    select
        'click' as event_type,
        timestamp_ms,
        user_id,
        null::double as latency_ms
    from click
    where event_date between $period_start and $period_end
    union all
    select
        'error' as event_type,
        timestamp_ms,
        user_id,
        null::double as latency_ms
    from error
    where event_date between $period_start and $period_end
),

hours as (
    select
        event_type,
        user_id,
        latency_ms,
        date_trunc('hour', make_timestamp(timestamp_ms * 1000)) as hour_start
    from events
),

final as (
    select
        hour_start,
        count(*) filter (where event_type = 'request') as requests,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'error') as errors,
        count(distinct user_id) as distinct_users,
        quantile_cont(latency_ms, 0.95) as latency_p95_ms
    from hours
    group by hour_start
)

select * from final
order by hour_start
