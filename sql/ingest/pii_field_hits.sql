-- Grain: one row per schema-valid line whose kept strings hold PII: the first such field, in the
--   schema's order, and the PII class ('raw_id' for the event's own raw id, 'pii_json_number' for
--   PII in a number of a scrubbed JSON object, where no token can replace it).
-- Parameters: none; reads `pii_candidates`. The detector is called here once for every type, so
--   it is planned once.
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

final as (
    select
        file_id,
        line_no,
        arg_min(field, n) as field,
        arg_min(pii_class, n) as pii_class
    from classified
    where pii_class is not null
    group by file_id, line_no
)

select * from final
