-- Grain: one row per quarantined line whose redacted text holds one of the given hashes (a
--   quarantined line keeps its identifiers, hashed, inside its text).
-- Inputs: view `quarantined` (the quarantine's files).
-- Parameters: $hashes (varchar[]: the users' HMACs under every key).
with

wanted as (
    select unnest($hashes) as hashed
),

final as (
    select distinct
        quarantined.event_date,
        quarantined.landing_file,
        quarantined.line_no,
        quarantined.reason,
        quarantined.event_id
    from quarantined
    inner join wanted on contains(quarantined.text, wanted.hashed)
)

select * from final
