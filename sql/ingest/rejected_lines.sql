-- Grain: one row per quarantined line whose reason was read from its (leniently parsed)
-- content, so the strict parser may still find it malformed.
-- Parameters: none; reads `fates` and `staged`.
select
    staged.file_id,
    staged.line_no,
    staged.line_text
from fates
inner join staged on fates.file_id = staged.file_id and fates.line_no = staged.line_no
where
    fates.fate = 'quarantined'
    and fates.reason in (
        'late_arrival',
        'future_timestamp',
        'unknown_event_type',
        'unknown_schema_version',
        'schema_violation',
        'pii_in_field'
    )
