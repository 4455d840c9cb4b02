-- Grain: one row per staged line: where it would end (row, duplicate or quarantined) and why.
-- Parameters: none; reads `fates` and `landing_files` (file_id, landing_file).
with

routed as (
    select
        file_id,
        line_no,
        fate,
        reason
    from fates
),

final as (
    select
        landing_files.landing_file,
        routed.line_no,
        routed.fate,
        routed.reason
    from routed
    inner join landing_files on routed.file_id = landing_files.file_id
)

select * from final
order by landing_file, line_no
