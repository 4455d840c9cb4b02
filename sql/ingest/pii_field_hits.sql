-- Grain: one row per schema-valid line whose kept strings hold PII: the first such field, in the
--   schema's order, and the PII class ('raw_id' for the event's own raw id, 'pii_json_number' for
--   PII in a number of a scrubbed JSON object, where no token can replace it, 'unshaped' for an
--   older version's identifier that misses the current shape: `pii_unshaped`). In one field, the
--   detector's class is named before 'unshaped'.
-- Parameters: none; reads `pii_candidates` and `pii_unshaped`. The detector is called here once
--   for every type, so it is planned once.
create table pii_field_hits as
with

classified as (
    select
        file_id,
        line_no,
        n,
        field,
        case
            when is_json then pii_json_number_class(value)
            else pii_field_class(value, ids)
        end as pii_class
    from pii_candidates
),

hits as (
    select
        file_id,
        line_no,
        n * 2 as rank,
        field,
        pii_class
    from classified
    where pii_class is not null
    union all
    select
        file_id,
        line_no,
        n * 2 + 1 as rank,
        field,
        'unshaped' as pii_class
    from pii_unshaped
),

final as (
    select
        file_id,
        line_no,
        arg_min(field, rank) as field,
        arg_min(pii_class, rank) as pii_class
    from hits
    group by file_id, line_no
)

select * from final
