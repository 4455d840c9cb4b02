-- Grain: one row per non-blank line of the landing files read whole for the first time: the
--   partition that owns it (filled batch by batch by record_owners.sql).
-- Parameters: none.
create or replace temp table line_owners (
    file_id integer,
    line_no bigint,
    owning_date date
)
