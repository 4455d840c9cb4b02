-- Grain: one row per (experiment_id, bucket, surface, device_type) of the period, plus one
--   all-traffic row (is_all_traffic = true, its dimensions null). An event is attributed to the
--   dimensions of its request; events whose request is not found (an orphan click, an error
--   without a request_id) form one row with null dimensions, flagged is_unattributed = true.
--   Every request has a surface and a device_type (both required by schemas/events/request),
--   so that row is the only per-dimension row with a null surface.
-- Ratios are null where their denominator is 0, never inf or NaN: the unattributed row has no
--   requests and no impressions (its clicks' impressions were not found either), so its ctr,
--   error_rate and impressions_per_request are null.
-- Parameters: $period_start, $period_end (dates, inclusive: one day, a Monday..Sunday week or a
--   calendar month).
-- Users across a PII key rotation: counted as their hash under the previous key where an event
--   of the period links the two (user_id_prev; table user_links, sql/rollups/user_links.sql), as
--   in traffic_merged.sql.
-- Inputs: views attributed_events and traffic_members (sql/rollups/traffic_attributed.sql: each
--   event, and each distinct member, with the dimensions of its request, read from the requests
--   of $period_start - 1 .. $period_end: an event's request may precede midnight), table
--   user_links, and the macros of sql/rollups/traffic_macros.sql.
with

events as (
    select * from attributed_events
    where event_date between $period_start and $period_end
),

members as (
    -- A user linked across a PII key rotation counts as its previous hash.
    select
        m.experiment_id,
        m.bucket,
        m.surface,
        m.device_type,
        m.part_name,
        coalesce(l.previous_id, m.member) as member
    from traffic_members as m
    left join user_links as l on m.part_name = 'users' and m.member = l.current_id
    where m.event_date between $period_start and $period_end
),

event_stats as (
    -- Each measure is null on the other types' events: it aggregates its own type's.
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        -- Not all traffic, yet no surface: the row of the events whose request was not found.
        grouping(experiment_id, bucket, surface, device_type) <> 15 and surface is null
            as is_unattributed,
        avg(coverage) as coverage_mean,
        quantile_cont(latency_ms, 0.5) as latency_p50_ms,
        quantile_cont(latency_ms, 0.95) as latency_p95_ms,
        quantile_cont(latency_ms, 0.99) as latency_p99_ms,
        avg(latency_ms) as latency_mean_ms,
        avg(dwell_ms) as dwell_mean_ms,
        quantile_cont(dwell_ms, 0.5) as dwell_median_ms,
        count(*) filter (where event_type = 'request') as requests,
        count(*) filter (where event_type = 'ranking') as rankings,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where engagement_type = 'click') as clicks_click,
        count(*) filter (where engagement_type = 'add_to_cart') as clicks_add_to_cart,
        count(*) filter (where engagement_type = 'save') as clicks_save,
        count(*) filter (where engagement_type = 'share') as clicks_share,
        count(*) filter (where engagement_type = 'purchase') as clicks_purchase,
        count(*) filter (where event_type = 'error') as errors
    from events
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

member_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(distinct member) filter (where part_name = 'users') as distinct_users,
        count(distinct member) filter (where part_name = 'items_ranked')
            as distinct_items_ranked,
        count(distinct member) filter (where part_name = 'items_impressed')
            as distinct_items_impressed,
        count(distinct member) filter (where part_name = 'sessions') as distinct_sessions
    from members
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

joined as (
    select
        e.*,
        coalesce(m.distinct_users, 0) as distinct_users,
        coalesce(m.distinct_items_ranked, 0) as distinct_items_ranked,
        coalesce(m.distinct_items_impressed, 0) as distinct_items_impressed,
        coalesce(m.distinct_sessions, 0) as distinct_sessions
    from event_stats as e
    left join member_stats as m on same_traffic_row(e, m)  -- noqa: RF02
),

final as (
    select
        *,
        $period_start as period_start,
        $period_end as period_end,
        -- The struct's fields (ctr .. clicks_per_session) as columns.
        unnest(traffic_ratios(joined))  -- noqa: AL03
    from joined
)

select * from final
order by is_all_traffic desc, experiment_id asc, bucket asc, surface asc, device_type asc
