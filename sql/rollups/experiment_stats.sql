-- Grain: one row per (experiment_id, bucket) with requests in the period.
-- Parameters: $period_start, $period_end (dates, inclusive; the weekly rollup: Monday..Sunday).
-- Inputs: views request, ranking, impression, click, error over the period's days; table
--   user_links (sql/rollups/user_links.sql: users bridged across a PII key rotation).
-- Exposed requests are those with at least one impression; each contributes its impressions n
--   and clicks c, summed as the sufficient statistics of a request-clustered CTR. Only events
--   inside the period count, so a request just before the period ends may be assigned but not
--   exposed in it.
with

first_requests as (
    -- One row per request_id (the first request), so a retried request is counted once.
    select
        request_id,
        experiment_id,
        bucket,
        user_id
    from request
    where event_date between $period_start and $period_end
    qualify row_number() over (partition by request_id order by timestamp_ms, event_id) = 1
),

requests as (
    select * from first_requests
    where experiment_id is not null
),

impressions_by_request as (
    select
        request_id,
        count(*) as n
    from impression
    where event_date between $period_start and $period_end
    group by request_id
),

clicks_by_request as (
    select
        request_id,
        count(*) as c
    from click
    where event_date between $period_start and $period_end
    group by request_id
),

latencies as (
    select
        q.experiment_id,
        q.bucket,
        r.latency_ms
    from ranking as r
    inner join requests as q on r.request_id = q.request_id
    where r.event_date between $period_start and $period_end
),

errors_by_bucket as (
    select
        q.experiment_id,
        q.bucket,
        count(*) as errors
    from error as e
    inner join requests as q on e.request_id = q.request_id
    where e.event_date between $period_start and $period_end
    group by q.experiment_id, q.bucket
),

exposed as (
    select
        q.experiment_id,
        q.bucket,
        i.n,
        coalesce(c.c, 0) as c
    from requests as q
    inner join impressions_by_request as i on q.request_id = i.request_id
    left join clicks_by_request as c on q.request_id = c.request_id
),

assigned as (
    select
        q.experiment_id,
        q.bucket,
        count(*) as requests_assigned,
        count(distinct coalesce(l.previous_id, q.user_id)) as users_assigned
    from requests as q
    left join user_links as l on q.user_id = l.current_id
    group by q.experiment_id, q.bucket
),

sufficient as (
    select
        experiment_id,
        bucket,
        count(*) as requests,
        sum(n)::bigint as impressions,
        sum(c)::bigint as clicks,
        sum(n * n)::bigint as impressions_sq,
        sum(c * c)::bigint as clicks_sq,
        sum(c * n)::bigint as clicks_impressions
    from exposed
    group by experiment_id, bucket
),

guardrails as (
    select
        experiment_id,
        bucket,
        quantile_cont(latency_ms, 0.95) as latency_p95_ms
    from latencies
    group by experiment_id, bucket
),

final as (
    select
        a.experiment_id,
        a.bucket,
        a.requests_assigned,
        a.users_assigned,
        g.latency_p95_ms,
        coalesce(s.requests, 0) as requests,
        coalesce(s.impressions, 0) as impressions,
        coalesce(s.clicks, 0) as clicks,
        coalesce(s.impressions_sq, 0) as impressions_sq,
        coalesce(s.clicks_sq, 0) as clicks_sq,
        coalesce(s.clicks_impressions, 0) as clicks_impressions,
        coalesce(e.errors, 0) / a.requests_assigned as error_rate
    from assigned as a
    left join sufficient as s on a.experiment_id = s.experiment_id and a.bucket = s.bucket
    left join guardrails as g on a.experiment_id = g.experiment_id and a.bucket = g.bucket
    left join errors_by_bucket as e on a.experiment_id = e.experiment_id and a.bucket = e.bucket
)

select * from final
order by experiment_id, bucket
