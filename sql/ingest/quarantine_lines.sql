-- Grain: one row per quarantined line of the partition, before redaction.
-- Parameters: none; reads `fates`, `staged` and `landing_files` (file_id, landing_file).
with

quarantined as (
    select
        file_id,
        line_no,
        reason,
        detail,
        event_type
    from fates
    where fate = 'quarantined'
),

final as (
    select
        landing_files.landing_file,
        staged.landing_dt,
        quarantined.line_no,
        staged.line_bytes,
        quarantined.reason,
        quarantined.detail,
        quarantined.event_type,
        staged.event_date as event_date_read,
        staged.line_text,
        staged.raw_bytes,
        -- Read here, for the few quarantined lines, not while staging every line.
        case
            when json_valid(staged.line_text)
                then case
                    when
                        regexp_matches(
                            json_extract_string(staged.line_text, '$."event_id"'),
                            '^[0-9a-fA-F-]{36}$'
                        )
                        then json_extract_string(staged.line_text, '$."event_id"')
                end
        end as event_id
    from quarantined
    inner join staged
        on quarantined.file_id = staged.file_id and quarantined.line_no = staged.line_no
    inner join landing_files on quarantined.file_id = landing_files.file_id
)

select * from final
order by landing_file, line_no
