-- Grain: one row per staged line, saying where it ended: row, quarantined or duplicate (a row of
--   an erased user becomes 'erased' afterwards: mark_erased.sql).
-- Parameters: none; reads `staged`, `checked_all` (every checked line of every type),
--   `pii_field_hits` (valid lines whose kept strings hold PII) and `dropped`.
-- A line with no reason and no check result would be lost: it is marked 'unaccounted' so the
-- ingest refuses to publish rather than drop it silently.
create table fates as
with

staged_lines as (
    select
        file_id,
        line_no,
        landing_dt,
        reason,
        detail,
        event_type
    from staged
),

checked as (
    select
        file_id,
        line_no,
        violations,
        -- Strict JSON forbids duplicate keys; the type check is where they are found cheaply.
        len(list_filter(violations, lambda l: suffix(l, ':duplicateKey'))) > 0 as duplicate_key
    from checked_all
),

final as (
    select
        staged_lines.file_id,
        staged_lines.line_no,
        staged_lines.landing_dt,
        staged_lines.event_type,
        case
            when staged_lines.reason is not null then 'quarantined'
            when checked.file_id is null then 'unaccounted'
            when len(checked.violations) > 0 then 'quarantined'
            when pii_field_hits.file_id is not null then 'quarantined'
            when dropped.fate = 'duplicate' then 'duplicate'
            when dropped.fate = 'conflicting_duplicate' then 'quarantined'
            else 'row'
        end as fate,
        case
            when staged_lines.reason is not null then staged_lines.reason
            when checked.duplicate_key then 'malformed_json'
            when len(checked.violations) > 0 then 'schema_violation'
            when pii_field_hits.file_id is not null then 'pii_in_field'
            when dropped.fate = 'conflicting_duplicate' then 'conflicting_duplicate'
        end as reason,
        case
            when staged_lines.reason is not null then staged_lines.detail
            when checked.duplicate_key then 'duplicate key in an object'
            when len(checked.violations) > 0 then array_to_string(checked.violations, '; ')
            -- Names the field and the class, never the value.
            when pii_field_hits.file_id is not null
                then pii_field_hits.field || ' holds ' || pii_field_hits.pii_class
            when dropped.fate = 'conflicting_duplicate'
                then 'same event_id as an earlier line, with different content'
        end as detail
    from staged_lines
    left join checked
        on staged_lines.file_id = checked.file_id and staged_lines.line_no = checked.line_no
    left join pii_field_hits
        on
            staged_lines.file_id = pii_field_hits.file_id
            and staged_lines.line_no = pii_field_hits.line_no
    left join dropped
        on staged_lines.file_id = dropped.file_id and staged_lines.line_no = dropped.line_no
)

select * from final
