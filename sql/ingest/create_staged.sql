-- Grain: one row per landing line owned by the partition being ingested (filled batch by batch).
-- Parameters: none.
create table staged (
    file_id integer,
    landing_dt date,
    line_no bigint,
    line_bytes bigint,
    line_text varchar,
    raw_bytes blob,
    reason varchar,
    detail varchar,
    event_type varchar,
    schema_version varchar,
    event_date date,
    lenient_hint boolean
)
