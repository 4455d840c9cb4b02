-- Grain: one variable, pii_flagged: the distinct kept strings (of every type) that the
--   detector's first regex cannot clear; a line holding one is expanded into candidates.
-- Parameters: none; reads pii_kept_values, the variable pii_re_candidates (pii_macros.sql) and
--   pii_re_hidden (pii_second_look.sql: what the scan cannot see, the second look can).
-- A statement of its own, over a table: in a query, the optimizer would push the regex below
-- the distinct and run it on every line's copy of every value.
set variable pii_flagged = (
    with

    kept_values as (
        select distinct v from pii_kept_values
    ),

    final as (
        select coalesce(list(v), []::varchar[]) as flagged
        from kept_values
        where
            regexp_matches(v, getvariable('pii_re_candidates'))
            or regexp_matches(v, pii_re_hidden())
    )

    select flagged from final
)
