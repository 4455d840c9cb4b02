-- Grain: one row per kept string of a schema-valid line that the cheap PII test could not clear
--   (filled per event type by pipelines/lib/ingest/pii_policy.py::candidates_query).
-- Parameters: none. ids: the line's raw identifiers (user_id, session_id); n: the field's order
--   in its schema; field: its name (items[].canonical_id for a nested one); is_json: the value
--   is JSON text (a scrubbed object, checked for PII in its numbers).
create temp table pii_candidates (
    file_id integer,
    line_no bigint,
    ids varchar[],
    n integer,
    field varchar,
    value varchar,
    is_json boolean
)
