-- Grain: one row per (previous hash, current hash) of a user seen on a PII key rotation's overlap
--   days within the period: the bridge that counts a user once across the rotation.
-- Parameters: $period_start, $period_end.
-- Inputs: the event views (request, ranking, impression, click, error).
create temp table user_links as
with

bridged as (
    select
        user_id,
        user_id_prev,
        event_date
    from request
    union all
    select
        user_id,
        user_id_prev,
        event_date
    from ranking
    union all
    select
        user_id,
        user_id_prev,
        event_date
    from impression
    union all
    select
        user_id,
        user_id_prev,
        event_date
    from click
    union all
    select
        user_id,
        user_id_prev,
        event_date
    from error
),

final as (
    select distinct
        user_id_prev as previous_id,
        user_id as current_id
    from bridged
    where
        event_date between $period_start and $period_end
        and user_id_prev is not null
        and user_id is not null
)

select * from final
