-- Grain: one row per line of the routed batch (`routed_batch`, route_lines.sql) that partition
--   $day owns.
-- Parameters: $file_id, $landing_dt (the file's arrival date), $day (the partition),
--   $max_line_bytes, $known_types (varchar[]), $known_versions (varchar[] of 'type/version': the
--   versions ingest accepts; each line is checked against the schema of its own version),
--   $lenient_hint_1 .. $lenient_hint_3 (regexes for lines DuckDB's lenient parser may accept but
--   strict JSON does not: LENIENT_JSON_HINTS),
--   $days_late / $days_early (the window: partition D reads landing D-$days_early .. D+$days_late).
insert into staged
with

owned as (
    select *
    from routed_batch
    where owning_date = $day
),

final as (
    select
        $file_id as file_id,
        $landing_dt as landing_dt,
        line_no,
        line_bytes,
        line_text,
        raw_bytes,
        case
            when line_bytes > $max_line_bytes then 'line_too_large'
            when line_text is null then 'not_utf8'
            when not json_ok then 'malformed_json'
            when event_date < $landing_dt - $days_late then 'late_arrival'
            when event_date > $landing_dt + $days_early then 'future_timestamp'
            when
                head is null
                or coalesce(json_type(head[1]), '') <> 'VARCHAR'
                or not list_contains($known_types, head_type)
                then 'unknown_event_type'
            when
                not list_contains($known_versions, head_type || '/' || coalesce(head_version, ''))
                then 'unknown_schema_version'
        end as reason,
        case
            when line_bytes > $max_line_bytes
                then
                    'line of ' || line_bytes || ' bytes exceeds the limit of '
                    || $max_line_bytes
            when line_text is null then 'bytes are not valid UTF-8'
            when not json_ok then 'not valid JSON'
            when event_date < $landing_dt - $days_late
                then
                    'event date ' || event_date || ' arrived on ' || $landing_dt
                    || ', more than ' || $days_late || ' days late'
            when event_date > $landing_dt + $days_early
                then
                    'event date ' || event_date || ' is more than ' || $days_early
                    || ' day(s) after arrival on '
                    || $landing_dt
            when head is null then 'not a JSON object'
            when
                coalesce(json_type(head[1]), '') <> 'VARCHAR'
                then 'event_type missing or not a string'
            when
                not list_contains($known_types, head_type)
                then 'event_type is not a published type'
            when
                not list_contains($known_versions, head_type || '/' || coalesce(head_version, ''))
                then 'schema_version is not an accepted version of ' || head_type
        end as detail,
        case when list_contains($known_types, head_type) then head_type end as event_type,
        case when list_contains($known_types, head_type) then head_version end as schema_version,
        event_date,
        json_ok and (
            regexp_matches(line_text, $lenient_hint_1)
            or regexp_matches(line_text, $lenient_hint_2)
            or regexp_matches(line_text, $lenient_hint_3)
        ) as lenient_hint
    from owned
)

select * from final
