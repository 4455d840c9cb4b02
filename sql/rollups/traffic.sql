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
-- Inputs: views request, ranking, impression, click, error over the period's days, and
--   request_dims over the requests of $period_start - 1 .. $period_end (an event's request may
--   precede midnight).
with

dims as (
    -- One whole row per request_id (the first request): a retried request must not mix the
    -- dimensions of two requests.
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

-- Distinct (dimensions, value) pairs first: a distinct count over grouping sets would hash every
-- unnested item and every impression twice over.
users as (
    select
        r.experiment_id,
        r.bucket,
        r.surface,
        r.device_type,
        coalesce(l.previous_id, r.user_id) as user_key
    from requests as r
    left join user_links as l on r.user_id = l.current_id
),

ranked_items as (
    select distinct
        r.experiment_id,
        r.bucket,
        r.surface,
        r.device_type,
        u.item.canonical_id
    from rankings as r, unnest(r.items) as u (item)
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
        c.engagement_type,
        c.dwell_ms,
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from click as c
    left join dims as d on c.request_id = d.request_id
    where c.event_date between $period_start and $period_end
),

errors as (
    select
        d.experiment_id,
        d.bucket,
        d.surface,
        d.device_type
    from error as e
    left join dims as d on e.request_id = d.request_id
    where e.event_date between $period_start and $period_end
),

impressed_items as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        canonical_id
    from impressions
),

impression_sessions as (
    select distinct
        experiment_id,
        bucket,
        surface,
        device_type,
        session_id
    from impressions
),

request_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(*) as requests,
        count(distinct user_key) as distinct_users
    from users
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

ranking_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(*) as rankings,
        avg(coverage) as coverage_mean,
        quantile_cont(latency_ms, 0.5) as latency_p50_ms,
        quantile_cont(latency_ms, 0.95) as latency_p95_ms,
        quantile_cont(latency_ms, 0.99) as latency_p99_ms,
        avg(latency_ms) as latency_mean_ms
    from rankings
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

ranked_item_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(distinct canonical_id) as distinct_items_ranked
    from ranked_items
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

impression_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(*) as impressions
    from impressions
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

impressed_item_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(distinct canonical_id) as distinct_items_impressed
    from impressed_items
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

session_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(distinct session_id) as distinct_sessions
    from impression_sessions
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

click_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(*) as clicks,
        count(*) filter (where engagement_type = 'click') as clicks_click,
        count(*) filter (where engagement_type = 'add_to_cart') as clicks_add_to_cart,
        count(*) filter (where engagement_type = 'save') as clicks_save,
        count(*) filter (where engagement_type = 'share') as clicks_share,
        count(*) filter (where engagement_type = 'purchase') as clicks_purchase,
        avg(dwell_ms) as dwell_mean_ms,
        quantile_cont(dwell_ms, 0.5) as dwell_median_ms
    from clicks
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

error_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        count(*) as errors
    from errors
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

groups as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        is_all_traffic
    from request_stats
    union
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        is_all_traffic
    from ranking_stats
    union
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        is_all_traffic
    from impression_stats
    union
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        is_all_traffic
    from click_stats
    union
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        is_all_traffic
    from error_stats
),

row_keys as (
    -- Not all traffic, yet no surface: the row of the events whose request was not found.
    select
        *,
        not is_all_traffic and surface is null as is_unattributed
    from groups
),

joined as (
    select
        g.experiment_id,
        g.bucket,
        g.surface,
        g.device_type,
        g.is_all_traffic,
        g.is_unattributed,
        r.coverage_mean,
        r.latency_p50_ms,
        r.latency_p95_ms,
        r.latency_p99_ms,
        r.latency_mean_ms,
        c.dwell_mean_ms,
        c.dwell_median_ms,
        coalesce(q.requests, 0) as requests,
        coalesce(r.rankings, 0) as rankings,
        coalesce(i.impressions, 0) as impressions,
        coalesce(c.clicks, 0) as clicks,
        coalesce(c.clicks_click, 0) as clicks_click,
        coalesce(c.clicks_add_to_cart, 0) as clicks_add_to_cart,
        coalesce(c.clicks_save, 0) as clicks_save,
        coalesce(c.clicks_share, 0) as clicks_share,
        coalesce(c.clicks_purchase, 0) as clicks_purchase,
        coalesce(e.errors, 0) as errors,
        coalesce(q.distinct_users, 0) as distinct_users,
        coalesce(ri.distinct_items_ranked, 0) as distinct_items_ranked,
        coalesce(ii.distinct_items_impressed, 0) as distinct_items_impressed,
        coalesce(ss.distinct_sessions, 0) as distinct_sessions
    from row_keys as g
    left join request_stats as q
        on
            g.is_all_traffic = q.is_all_traffic
            and g.experiment_id is not distinct from q.experiment_id
            and g.bucket is not distinct from q.bucket
            and g.surface is not distinct from q.surface
            and g.device_type is not distinct from q.device_type
    left join ranking_stats as r
        on
            g.is_all_traffic = r.is_all_traffic
            and g.experiment_id is not distinct from r.experiment_id
            and g.bucket is not distinct from r.bucket
            and g.surface is not distinct from r.surface
            and g.device_type is not distinct from r.device_type
    left join ranked_item_stats as ri
        on
            g.is_all_traffic = ri.is_all_traffic
            and g.experiment_id is not distinct from ri.experiment_id
            and g.bucket is not distinct from ri.bucket
            and g.surface is not distinct from ri.surface
            and g.device_type is not distinct from ri.device_type
    left join impression_stats as i
        on
            g.is_all_traffic = i.is_all_traffic
            and g.experiment_id is not distinct from i.experiment_id
            and g.bucket is not distinct from i.bucket
            and g.surface is not distinct from i.surface
            and g.device_type is not distinct from i.device_type
    left join impressed_item_stats as ii
        on
            g.is_all_traffic = ii.is_all_traffic
            and g.experiment_id is not distinct from ii.experiment_id
            and g.bucket is not distinct from ii.bucket
            and g.surface is not distinct from ii.surface
            and g.device_type is not distinct from ii.device_type
    left join session_stats as ss
        on
            g.is_all_traffic = ss.is_all_traffic
            and g.experiment_id is not distinct from ss.experiment_id
            and g.bucket is not distinct from ss.bucket
            and g.surface is not distinct from ss.surface
            and g.device_type is not distinct from ss.device_type
    left join click_stats as c
        on
            g.is_all_traffic = c.is_all_traffic
            and g.experiment_id is not distinct from c.experiment_id
            and g.bucket is not distinct from c.bucket
            and g.surface is not distinct from c.surface
            and g.device_type is not distinct from c.device_type
    left join error_stats as e
        on
            g.is_all_traffic = e.is_all_traffic
            and g.experiment_id is not distinct from e.experiment_id
            and g.bucket is not distinct from e.bucket
            and g.surface is not distinct from e.surface
            and g.device_type is not distinct from e.device_type
),

final as (
    select
        *,
        $period_start as period_start,
        $period_end as period_end,
        clicks / nullif(impressions, 0) as ctr,
        distinct_items_impressed / nullif(distinct_items_ranked, 0) as item_coverage,
        errors / nullif(requests, 0) as error_rate,
        impressions / nullif(requests, 0) as impressions_per_request,
        clicks / nullif(distinct_sessions, 0) as clicks_per_session
    from joined
)

select * from final
order by is_all_traffic desc, experiment_id asc, bucket asc, surface asc, device_type asc
