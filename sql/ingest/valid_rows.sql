-- Grain: one row per staged line that passed its schema and whose kept strings hold no PII: the
--   lines deduplication ranks (dedup.sql).
-- Parameters: none; reads `checked_all` and `pii_field_hits`.
create view valid_rows as
with

checked as (
    select
        file_id,
        line_no,
        event_id,
        content_hash
    from checked_all
    where len(violations) = 0
),

final as (
    select checked.*
    from checked
    anti join pii_field_hits
        on checked.file_id = pii_field_hits.file_id and checked.line_no = pii_field_hits.line_no
)

select * from final
