-- Grain: none; `pii_field_hits` (see pii_field_hits.sql) for a day whose kept strings all passed
--   the cheap PII test, so the detector need not be planned.
-- Parameters: none.
create table pii_field_hits (
    file_id integer,
    line_no bigint,
    field varchar,
    pii_class varchar
)
