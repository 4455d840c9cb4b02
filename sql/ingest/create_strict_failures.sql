-- Grain: one row per line the strict JSON parser rejects (filled batch by batch from Python).
-- Parameters: none.
create or replace table strict_failures (
    file_id integer,
    line_no bigint,
    detail varchar
)
