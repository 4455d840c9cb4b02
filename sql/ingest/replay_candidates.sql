-- Grain: one row per quarantined line whose reason the schemas decide: a line a newly published
--   schema may make valid (a replay candidate).
-- Parameters: $files (the quarantine partitions' Parquet files), $reasons (varchar[]: the
--   reasons a schema decides).
with

quarantined as (
    select
        event_date,
        landing_file,
        landing_dt,
        line_no,
        reason
    from read_parquet($files, hive_partitioning = true)
),

final as (
    select *
    from quarantined
    where list_contains($reasons, reason)
)

select * from final
order by event_date, landing_file, line_no
