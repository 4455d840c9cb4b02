-- Grain: one row per (experiment_id, bucket, surface, device_type, part_name, member) of the
--   day for the distinct parts (users, items_ranked, items_impressed, sessions: member set), and
--   one row per event for the value parts (latency_ms and coverage per ranking, dwell_ms per
--   click: measure set). These are the exact, mergeable pieces a week or a month needs for its
--   distinct counts, percentiles and means, so those are recomputed from events' values without
--   rescanning the events.
-- user_links (one member per (user_id_prev, user_id) pair, as 'previous:current', dimensions
--   null): within the overlap after a PII key rotation, which new hash is which previous one, so
--   a week or month spanning the rotation counts each user once (traffic_merged.sql); none
--   outside the overlap.
-- Parameters: $period_start, $period_end (dates, inclusive; the daily build: one day).
-- Inputs: the same views as traffic.sql.
with

dims as (
    -- One whole row per request_id (the first request), as in traffic.sql.
    select
        request_id,
        experiment_id,
        bucket,
        surface,
        device_type
    from request_dims
    qualify row_number() over (partition by request_id order by timestamp_ms, event_id) = 1
),

requests as (
    select
        q.user_id,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from request as q
    left join dims as d on q.request_id = d.request_id
    where q.event_date between $period_start and $period_end
),

rankings as (
    select
        r.coverage,
        r.latency_ms,
        r.items,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from ranking as r
    left join dims as d on r.request_id = d.request_id
    where r.event_date between $period_start and $period_end
),

impressions as (
    select
        i.canonical_id,
        i.session_id,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from impression as i
    left join dims as d on i.request_id = d.request_id
    where i.event_date between $period_start and $period_end
),

clicks as (
    select
        c.dwell_ms,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from click as c
    left join dims as d on c.request_id = d.request_id
    where c.event_date between $period_start and $period_end and c.dwell_ms is not null
),

users as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        'users' as part_name,
        user_id as member,
        null::double as measure
    from requests
),

link_parts as (
    -- A link holds for every dimension, so its dimensions are null.
    select
        null::varchar as experiment_id,
        null::varchar as bucket,
        null::varchar as surface,
        null::varchar as device_type,
        'user_links' as part_name,
        previous_id || ':' || current_id as member,
        null::double as measure
    from user_links
),

items_ranked as (
    select distinct
        r.experiment_id,
        r.bucket,
        r.surface,
        r.device_type,
        'items_ranked' as part_name,
        u.item.canonical_id as member,
        null::double as measure
    from rankings as r, unnest(r.items) as u (item)
),

items_impressed as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        'items_impressed' as part_name,
        canonical_id as member,
        null::double as measure
    from impressions
),

sessions as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        'sessions' as part_name,
        session_id as member,
        null::double as measure
    from impressions
),

latencies as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        'latency_ms' as part_name,
        null::varchar as member,
        latency_ms::double as measure
    from rankings
),

coverages as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        'coverage' as part_name,
        null::varchar as member,
        coverage::double as measure
    from rankings
),

dwells as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        'dwell_ms' as part_name,
        null::varchar as member,
        dwell_ms::double as measure
    from clicks
),

final as (
    select * from users
    union all
    select * from link_parts
    union all
    select * from items_ranked
    union all
    select * from items_impressed
    union all
    select * from sessions
    union all
    select * from latencies
    union all
    select * from coverages
    union all
    select * from dwells
)

select * from final
