-- Grain: one row per schema-valid line of an older accepted version (1.x) whose identifier misses
--   the current version's shape (pattern, enum or const): the first such field (filled per older
--   version by pipelines/lib/ingest/pii_policy.py::unshaped_query).
-- Parameters: none. n: the field's order, as in pii_candidates; field: its name
--   (items[].canonical_id for a nested one).
create temp table pii_unshaped (
    file_id integer,
    line_no bigint,
    n integer,
    field varchar
)
