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
-- Inputs: views attributed_events and traffic_members (sql/rollups/traffic_attributed.sql: each
--   event, and each distinct member, with the dimensions of its request), table user_links.
with

events as (
    select * from attributed_events
    where event_date between $period_start and $period_end
),

members as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        part_name,
        member,
        null::double as measure
    from traffic_members
    where event_date between $period_start and $period_end
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

ranking_measures as (
    -- Two rows per ranking: its latency and its coverage.
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        unnest(['latency_ms', 'coverage']) as part_name,
        null::varchar as member,
        unnest([latency_ms::double, coverage::double]) as measure
    from events
    where event_type = 'ranking'
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
    from events
    where event_type = 'click' and dwell_ms is not null
),

final as (
    select * from members
    union all
    select * from link_parts
    union all
    select * from ranking_measures
    union all
    select * from dwells
)

select * from final
