-- Grain: one row per contract violation that names an erased event, or whose detail holds one of
--   the erased users' hashes.
-- Inputs: view `violations` (the contracts' files).
-- Parameters: $event_ids (varchar[]: the erased events and quarantined lines), $hashes (varchar[]).
with

wanted as (
    select unnest($hashes) as hashed
),

final as (
    select distinct
        violations.event_date,
        violations.event_id,
        violations.family,
        violations.rule
    from violations
    where
        violations.event_id in (select unnest($event_ids))
        or exists (
            select 1
            from wanted
            where contains(violations.detail, wanted.hashed)
        )
)

select * from final
