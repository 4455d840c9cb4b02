-- Grain: one row per stored event (of one event type) whose user_id, or user_id_prev during a key
--   rotation's overlap, is one of the given hashes.
-- Inputs: view `user_events` (the event table's files, with user_id_prev null where absent).
-- Parameters: $hashes (varchar[]: the users' HMACs under every key).
with

wanted as (
    select unnest($hashes) as hashed
),

final as (
    select
        user_events.event_date,
        user_events.event_id,
        user_events.landing_file
    from user_events
    where
        user_events.user_id in (select wanted.hashed from wanted)
        or user_events.user_id_prev in (select wanted.hashed from wanted)
)

select * from final
