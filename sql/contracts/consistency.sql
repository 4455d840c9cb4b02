-- Grain: one row per (rule, event) where an event of day $day breaks a consistency rule.
-- Parameters: $day (the partition), $clock_skew_ms (how far an event may precede its partner).
-- Inputs: views request, ranking, impression, click over the days $day - 1 .. $day + 1 that
--   exist, so a partner across midnight is found; only events of $day are judged.
-- Partners: a request_id's first request, first ranking and an item's first impression.
-- partner_missing: the violation is a partner not found, which D + 1 (if not yet ingested)
--   may still hold.
-- user_id_prev: around a PII key rotation the days read are hashed with different keys; rows of
--   the overlap carry the previous key's hash too, so user agreement is checked through it.
with

requests as (
    select
        'request' as event_type,
        event_id,
        request_id,
        user_id,
        user_id_prev,
        timestamp_ms,
        k,
        experiment_id,
        bucket,
        event_date
    from request
),

rankings as (
    select
        'ranking' as event_type,
        event_id,
        request_id,
        user_id,
        user_id_prev,
        timestamp_ms,
        experiment_id,
        bucket,
        items,
        event_date
    from ranking
),

impressions as (
    select
        'impression' as event_type,
        event_id,
        request_id,
        user_id,
        user_id_prev,
        timestamp_ms,
        canonical_id,
        position,
        event_date
    from impression
),

clicks as (
    select
        'click' as event_type,
        event_id,
        request_id,
        user_id,
        user_id_prev,
        timestamp_ms,
        canonical_id,
        engagement_type,
        event_date
    from click
),

request_partners as (
    -- The first request's whole row (a retry must not lend its experiment to the first request),
    -- with how many requests share the request_id.
    select
        request_id,
        user_id,
        user_id_prev,
        k,
        experiment_id,
        bucket,
        timestamp_ms as request_ms,
        count(*) over (partition by request_id) as requests
    from requests
    qualify row_number() over (partition by request_id order by timestamp_ms, event_id) = 1
),

ranking_partners as (
    select
        request_id,
        count(*) as rankings,
        min(timestamp_ms) as ranking_ms
    from rankings
    group by request_id
),

ranked_items as (
    select
        r.request_id,
        u.item.canonical_id,
        u.item.position
    from rankings as r, unnest(r.items) as u (item)
    where r.request_id in (
        select i.request_id from impressions as i
        where i.event_date = $day
    )
),

impression_partners as (
    select
        request_id,
        canonical_id,
        min(timestamp_ms) as impression_ms
    from impressions
    group by request_id, canonical_id
),

click_order as (
    select
        event_id,
        row_number() over (
            partition by request_id, canonical_id, engagement_type
            order by timestamp_ms, event_id
        ) as nth
    from clicks
),

events as (
    -- The four types in one relation, each type's own columns null on the others'.
    select * from requests
    union all by name
    select * from rankings
    union all by name
    select * from impressions
    union all by name
    select * from clicks
),

day_events as (
    -- The events judged: those of $day.
    select * from events
    where event_date = $day
),

request_has_one_ranking as (
    select
        'request_has_one_ranking' as rule,
        'request' as event_type,
        q.event_id,
        q.request_id,
        'request has ' || coalesce(p.rankings, 0) || ' rankings' as detail,
        coalesce(p.rankings, 0) = 0 as partner_missing
    from day_events as q
    left join ranking_partners as p on q.request_id = p.request_id
    where q.event_type = 'request' and coalesce(p.rankings, 0) <> 1
),

ranking_has_one_request as (
    select
        'ranking_has_one_request' as rule,
        'ranking' as event_type,
        r.event_id,
        r.request_id,
        'ranking has ' || coalesce(p.requests, 0) || ' requests' as detail,
        coalesce(p.requests, 0) = 0 as partner_missing
    from day_events as r
    left join request_partners as p on r.request_id = p.request_id
    where r.event_type = 'ranking' and coalesce(p.requests, 0) <> 1
),

impression_has_ranking as (
    select
        'impression_has_ranking' as rule,
        'impression' as event_type,
        i.event_id,
        i.request_id,
        'no ranking for this request_id' as detail,
        true as partner_missing
    from day_events as i
    anti join ranking_partners as p on i.request_id = p.request_id
    where i.event_type = 'impression'
),

impression_matches_ranked_item as (
    select
        'impression_matches_ranked_item' as rule,
        'impression' as event_type,
        i.event_id,
        i.request_id,
        'item ' || i.canonical_id || ' at position ' || i.position
        || ' is not in the ranking at that position' as detail,
        false as partner_missing
    from day_events as i
    semi join ranking_partners as p on i.request_id = p.request_id
    anti join ranked_items as r
        on
            i.request_id = r.request_id
            and i.canonical_id = r.canonical_id
            and i.position = r.position
    where i.event_type = 'impression'
),

click_has_impression as (
    select
        'click_has_impression' as rule,
        'click' as event_type,
        c.event_id,
        c.request_id,
        'no impression of item ' || c.canonical_id || ' for this request_id' as detail,
        true as partner_missing
    from day_events as c
    anti join impression_partners as p
        on c.request_id = p.request_id and c.canonical_id = p.canonical_id
    where c.event_type = 'click'
),

click_is_unique as (
    select
        'click_is_unique' as rule,
        'click' as event_type,
        c.event_id,
        c.request_id,
        c.engagement_type || ' number ' || o.nth || ' on item ' || c.canonical_id as detail,
        false as partner_missing
    from day_events as c
    inner join click_order as o on c.event_id = o.event_id
    where c.event_type = 'click' and o.nth > 1
),

chain_events as (
    select
        event_type,
        event_id,
        request_id,
        user_id,
        user_id_prev,
        timestamp_ms
    from day_events
    where event_type <> 'request'
),

user_agrees_with_request as (
    select
        'user_agrees_with_request' as rule,
        e.event_type,
        e.event_id,
        e.request_id,
        'user_id differs from the request''s' as detail,
        false as partner_missing
    from chain_events as e
    inner join request_partners as p on e.request_id = p.request_id
    where not (
        e.user_id is not distinct from p.user_id
        -- Across a key rotation the two sides may be hashed with different keys: they agree
        -- when the newer side's hash under the previous key is the older side's hash.
        or coalesce(e.user_id_prev = p.user_id or e.user_id = p.user_id_prev, false)
    )
),

experiment_agrees_with_request as (
    select
        'experiment_agrees_with_request' as rule,
        'ranking' as event_type,
        r.event_id,
        r.request_id,
        'ranking has ' || r.experiment_id || '/' || r.bucket || ', request has '
        || p.experiment_id || '/' || coalesce(p.bucket, 'no bucket') as detail,
        false as partner_missing
    from day_events as r
    inner join request_partners as p on r.request_id = p.request_id
    where
        r.event_type = 'ranking'
        and p.experiment_id is not null
        and (r.experiment_id, r.bucket) is distinct from (p.experiment_id, p.bucket)
),

partner_times as (
    select
        r.event_id,
        r.request_id,
        'ranking' as event_type,
        r.timestamp_ms,
        p.request_ms as partner_ms,
        'request' as partner
    from day_events as r
    inner join request_partners as p on r.request_id = p.request_id
    where r.event_type = 'ranking'
    union all
    select
        i.event_id,
        i.request_id,
        'impression' as event_type,
        i.timestamp_ms,
        p.ranking_ms as partner_ms,
        'ranking' as partner
    from day_events as i
    inner join ranking_partners as p on i.request_id = p.request_id
    where i.event_type = 'impression'
    union all
    select
        c.event_id,
        c.request_id,
        'click' as event_type,
        c.timestamp_ms,
        p.impression_ms as partner_ms,
        'impression' as partner
    from day_events as c
    inner join impression_partners as p
        on c.request_id = p.request_id and c.canonical_id = p.canonical_id
    where c.event_type = 'click'
),

time_order as (
    select
        'time_order' as rule,
        event_type,
        event_id,
        request_id,
        event_type || ' is ' || (partner_ms - timestamp_ms) || ' ms before its ' || partner
            as detail,
        false as partner_missing
    from partner_times
    where timestamp_ms < partner_ms - $clock_skew_ms
),

items_within_k as (
    select
        'items_within_k' as rule,
        'ranking' as event_type,
        r.event_id,
        r.request_id,
        len(r.items) || ' items for k = ' || p.k as detail,
        false as partner_missing
    from day_events as r
    inner join request_partners as p on r.request_id = p.request_id
    where r.event_type = 'ranking' and len(r.items) > p.k
),

final as (
    select * from request_has_one_ranking
    union all
    select * from ranking_has_one_request
    union all
    select * from impression_has_ranking
    union all
    select * from impression_matches_ranked_item
    union all
    select * from click_has_impression
    union all
    select * from click_is_unique
    union all
    select * from user_agrees_with_request
    union all
    select * from experiment_agrees_with_request
    union all
    select * from time_order
    union all
    select * from items_within_k
)

select * from final
