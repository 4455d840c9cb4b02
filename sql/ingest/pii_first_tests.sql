-- The tables of the PII detector's two cheap first tests (pipelines/lib/ingest/pii_policy.py),
-- filled
-- per event type before any line is expanded into candidates.
-- Grain: pii_kept_values, one row per distinct kept string of a type's schema-valid lines;
--   pii_id_suspects, one row per valid line whose kept strings, joined, contain one of its own
--   raw ids. Parameters: none.
create temp table pii_kept_values (v varchar);

create temp table pii_id_suspects (file_id integer, line_no bigint);
