-- Grain: one row per stored event (of one event type) of the user: its JSON and its time.
-- Inputs: view `user_events` (the event table's files, with user_id_prev null where absent).
-- Parameters: $hashes (varchar[]: the user's HMACs under every key).
with

wanted as (
    select unnest($hashes) as hashed
),

matched as (
    select user_events.*
    from user_events
    where
        user_events.user_id in (select wanted.hashed from wanted)
        or user_events.user_id_prev in (select wanted.hashed from wanted)
),

final as (
    select
        json_merge_patch(to_json(matched), json_object('table', 'events')) as json_line,
        strftime(matched.event_ts, '%Y-%m-%dT%H:%M:%S.%gZ') as event_ts_utc
    from matched
    order by matched.timestamp_ms, matched.event_id
)

select * from final
