-- Grain: one row per event (request, ranking, impression, click, error) of the registered days,
--   with the dimensions of its request: experiment_id, bucket, surface, device_type of the first
--   request of its request_id (a retried request must not mix the dimensions of two requests),
--   all null where the request is not found (an orphan click, an error without a request_id).
-- Columns besides those: event_type, event_date, and what the traffic models measure: user_id
--   (requests), coverage, latency_ms, items (rankings), canonical_id, session_id (impressions),
--   engagement_type, dwell_ms (clicks); null on the other types.
-- Parameters: none. A view: its readers (traffic.sql, traffic_parts.sql) select their period
--   ($period_start .. $period_end) by event_date.
-- Inputs: views request, ranking, impression, click, error and request_dims (the requests of the
--   period and its eve: an event's request may precede midnight).
create temp view attributed_events as
with

first_requests as (
    select
        request_id,
        experiment_id,
        bucket,
        surface,
        device_type
    from request_dims
    qualify row_number() over (partition by request_id order by timestamp_ms, event_id) = 1
),

events as (
    select
        'request' as event_type,
        event_date,
        request_id,
        user_id
    from request
    union all by name
    select
        'ranking' as event_type,
        event_date,
        request_id,
        coverage,
        latency_ms,
        items
    from ranking
    union all by name
    select
        'impression' as event_type,
        event_date,
        request_id,
        canonical_id,
        session_id
    from impression
    union all by name
    select
        'click' as event_type,
        event_date,
        request_id,
        engagement_type,
        dwell_ms
    from click
    union all by name
    select
        'error' as event_type,
        event_date,
        request_id
    from error
),

final as (
    select
        e.event_type,
        e.event_date,
        e.user_id,
        e.coverage,
        e.latency_ms,
        e.items,
        e.canonical_id,
        e.session_id,
        e.engagement_type,
        e.dwell_ms,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from events as e
    left join first_requests as d on e.request_id = d.request_id
)

select * from final;

-- Grain: one row per (event_date, experiment_id, bucket, surface, device_type, part_name,
--   member) of attributed_events: the distinct members of each dimension combination per day,
--   part_name 'users' (the request's user_id, as stored: no user_links applied),
--   'items_ranked' (each ranked item's canonical_id), 'items_impressed' (canonical_id) and
--   'sessions' (the impression's session_id). A distinct count over these rows hashes each
--   member once, not every unnested item and every impression.
-- Parameters: none (a view, like attributed_events).
create temp view traffic_members as
with

parts as (
    select
        event_date,
        experiment_id,
        bucket,
        surface,
        device_type,
        'users' as part_name,
        user_id as member
    from attributed_events
    where event_type = 'request'
    union all
    select
        a.event_date,
        a.experiment_id,
        a.bucket,
        a.surface,
        a.device_type,
        'items_ranked' as part_name,
        u.item.canonical_id as member
    from attributed_events as a, unnest(a.items) as u (item)
    where a.event_type = 'ranking'
    union all
    select
        event_date,
        experiment_id,
        bucket,
        surface,
        device_type,
        unnest(['items_impressed', 'sessions']) as part_name,
        unnest([canonical_id, session_id]) as member
    from attributed_events
    where event_type = 'impression'
),

final as (
    select distinct * from parts
)

select * from final
