-- Grain: as traffic.sql (one row per (experiment_id, bucket, surface, device_type) plus the
--   all-traffic row), for a week or a month, merged exactly from the daily pieces of its days:
--   counts add up; distinct counts, percentiles and means are recomputed from the days' distinct
--   members and per-event values (traffic_parts), never from daily ratios. The days'
--   unattributed rows (null dimensions, no request found) merge into one, flagged
--   is_unattributed as in traffic.sql; ratios are null where their denominator is 0.
-- Users across a PII key rotation: a user_id hashed with the new key is counted as the hash
--   under the previous key it is linked to (part user_links, from the overlap days of the
--   period), so each user is counted once when the period has a day of the overlap on which the
--   user was seen; one rotation per period is bridged.
-- Parameters: $period_start, $period_end (dates, inclusive: a Monday..Sunday week or a month).
-- Inputs: views period_traffic_daily (the traffic_daily rows of the period's days) and
--   period_traffic_parts (their traffic_parts rows); the macros of traffic_macros.sql.
with

day_counts as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        requests,
        rankings,
        impressions,
        clicks,
        clicks_click,
        clicks_add_to_cart,
        clicks_save,
        clicks_share,
        clicks_purchase,
        errors
    from period_traffic_daily
    where not is_all_traffic
),

counts as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        coalesce(sum(requests), 0)::bigint as requests,
        coalesce(sum(rankings), 0)::bigint as rankings,
        coalesce(sum(impressions), 0)::bigint as impressions,
        coalesce(sum(clicks), 0)::bigint as clicks,
        coalesce(sum(clicks_click), 0)::bigint as clicks_click,
        coalesce(sum(clicks_add_to_cart), 0)::bigint as clicks_add_to_cart,
        coalesce(sum(clicks_save), 0)::bigint as clicks_save,
        coalesce(sum(clicks_share), 0)::bigint as clicks_share,
        coalesce(sum(clicks_purchase), 0)::bigint as clicks_purchase,
        coalesce(sum(errors), 0)::bigint as errors
    from day_counts
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

user_links as (
    select distinct
        split_part(member, ':', 1) as previous_id,
        split_part(member, ':', 2) as current_id
    from period_traffic_parts
    where part_name = 'user_links'
),

members as (
    -- Each distinct member once per dimension combination, however many days it appears on:
    -- counting rows of this is a distinct count, without a distinct aggregate per grouping set.
    select distinct
        p.experiment_id,
        p.bucket,
        p.surface,
        p.device_type,
        p.part_name,
        coalesce(l.previous_id, p.member) as member
    from period_traffic_parts as p
    left join user_links as l on p.part_name = 'users' and p.member = l.current_id
    where p.member is not null and p.part_name <> 'user_links'
),

group_members as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        false as is_all_traffic,
        count(*) filter (where part_name = 'users') as distinct_users,
        count(*) filter (where part_name = 'items_ranked') as distinct_items_ranked,
        count(*) filter (where part_name = 'items_impressed') as distinct_items_impressed,
        count(*) filter (where part_name = 'sessions') as distinct_sessions
    from members
    group by experiment_id, bucket, surface, device_type
),

all_members as (
    select
        null::varchar as experiment_id,
        null::varchar as bucket,
        null::varchar as surface,
        null::varchar as device_type,
        true as is_all_traffic,
        count(distinct member) filter (where part_name = 'users') as distinct_users,
        count(distinct member) filter (where part_name = 'items_ranked')
            as distinct_items_ranked,
        count(distinct member) filter (where part_name = 'items_impressed')
            as distinct_items_impressed,
        count(distinct member) filter (where part_name = 'sessions') as distinct_sessions
    from members
),

member_stats as (
    select * from group_members
    union all
    select * from all_members
),

measure_stats as (
    select
        experiment_id,
        bucket,
        surface,
        device_type,
        grouping(experiment_id, bucket, surface, device_type) = 15 as is_all_traffic,
        avg(measure) filter (where part_name = 'coverage') as coverage_mean,
        quantile_cont(measure, 0.5) filter (where part_name = 'latency_ms') as latency_p50_ms,
        quantile_cont(measure, 0.95) filter (where part_name = 'latency_ms') as latency_p95_ms,
        quantile_cont(measure, 0.99) filter (where part_name = 'latency_ms') as latency_p99_ms,
        avg(measure) filter (where part_name = 'latency_ms') as latency_mean_ms,
        avg(measure) filter (where part_name = 'dwell_ms') as dwell_mean_ms,
        quantile_cont(measure, 0.5) filter (where part_name = 'dwell_ms') as dwell_median_ms
    from period_traffic_parts
    where member is null
    group by grouping sets ((experiment_id, bucket, surface, device_type), ())
),

row_keys as (
    -- Not all traffic, yet no surface: the row of the events whose request was not found.
    select
        *,
        not is_all_traffic and surface is null as is_unattributed
    from counts
),

joined as (
    select
        c.experiment_id,
        c.bucket,
        c.surface,
        c.device_type,
        c.is_all_traffic,
        c.is_unattributed,
        v.coverage_mean,
        v.latency_p50_ms,
        v.latency_p95_ms,
        v.latency_p99_ms,
        v.latency_mean_ms,
        v.dwell_mean_ms,
        v.dwell_median_ms,
        c.requests,
        c.rankings,
        c.impressions,
        c.clicks,
        c.clicks_click,
        c.clicks_add_to_cart,
        c.clicks_save,
        c.clicks_share,
        c.clicks_purchase,
        c.errors,
        coalesce(m.distinct_users, 0) as distinct_users,
        coalesce(m.distinct_items_ranked, 0) as distinct_items_ranked,
        coalesce(m.distinct_items_impressed, 0) as distinct_items_impressed,
        coalesce(m.distinct_sessions, 0) as distinct_sessions
    from row_keys as c
    left join member_stats as m on same_traffic_row(c, m)  -- noqa: RF02
    left join measure_stats as v on same_traffic_row(c, v)  -- noqa: RF02
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
