-- Grain: one row per schema-valid line of an older version whose identifier misses the current
--   shape (`pii_unshaped`), class 'unshaped': `pii_field_hits` (see pii_field_hits.sql) for a day
--   whose kept strings all passed the cheap PII test, so the detector need not be planned.
-- Parameters: none; reads `pii_unshaped`.
create table pii_field_hits as
with

unshaped as (
    select
        file_id,
        line_no,
        n,
        field
    from pii_unshaped
),

final as (
    select
        file_id,
        line_no,
        arg_min(field, n) as field,
        'unshaped' as pii_class
    from unshaped
    group by file_id, line_no
)

select * from final
