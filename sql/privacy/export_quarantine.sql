-- Grain: one row per quarantined line of the user (its redacted text holds one of the hashes).
-- Inputs: view `quarantined` (the quarantine's files).
-- Parameters: $hashes (varchar[]: the user's HMACs under every key).
with

wanted as (
    select unnest($hashes) as hashed
),

matched as (
    select distinct quarantined.*
    from quarantined
    inner join wanted on contains(quarantined.text, wanted.hashed)
),

final as (
    select json_merge_patch(to_json(matched), json_object('table', 'quarantine')) as json_line
    from matched
    order by matched.landing_file, matched.line_no
)

select * from final
