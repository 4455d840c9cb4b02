-- Grain: one row per line of a landing-file batch (`line_batch`), in order: whether its user_id
--   is one of the raw ids being erased.
-- Parameters: $user_ids (varchar[]: raw user ids, as producers sent them).
with

lines as (
    select
        line_no,
        try(decode(raw)) as line_text
    from line_batch
),

final as (
    select
        coalesce(
            json_valid(line_text)
            and try(json_extract_string(line_text, '$.user_id')) in (select unnest($user_ids)),
            false
        ) as erased
    from lines
    order by line_no
)

select * from final
