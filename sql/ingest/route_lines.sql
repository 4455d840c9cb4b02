-- Grain: one row per line of one landing-file batch (`line_batch`), whichever partition owns
--   it: its bytes, text, JSON head, event date and owning date (temp table `routed_batch`, read by
--   stage_routed.sql and record_owners.sql, so each line is parsed once).
-- Parameters: $landing_dt (the file's arrival date), $max_line_bytes,
--   $days_late / $days_early (the window: partition D reads landing D-$days_early .. D+$days_late).
-- A line is owned by its event date E when the partitions reading its landing date A
-- (A-$days_late .. A+$days_early) include E; otherwise (late, future, or no readable date)
-- by A itself.
create or replace temp table routed_batch as
with

lines as (
    select
        line_no,
        raw,
        line_bytes
    from line_batch
),

decoded as (
    select
        line_no,
        raw,
        line_bytes,
        case when line_bytes <= $max_line_bytes then try(decode(raw)) end as line_text
    from lines
),

parsed as (
    select
        *,
        coalesce(line_text is not null and json_valid(line_text), false) as json_ok
    from decoded
),

heads as (
    select
        *,
        case
            -- A line the parser accepted is an object when it starts with '{' (after JSON white
            -- space): a string test instead of parsing it once more.
            when json_ok and left(ltrim(line_text, ' ' || chr(9) || chr(10) || chr(13)), 1) = '{'
                then json_extract(
                    line_text,
                    ['$."event_type"', '$."schema_version"', '$."timestamp_ms"']
                )
        end as head
    from parsed
),

routed as (
    select
        *,
        case
            when
                json_type(head[3]) in ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')
                and try_cast(head[3] as double) between 0 and 253402300799999
                then cast(epoch_ms(cast(floor(try_cast(head[3] as double)) as bigint)) as date)
        end as event_date,
        json_extract_string(head[1], '$') as head_type,
        json_extract_string(head[2], '$') as head_version
    from heads
),

final as (
    select
        line_no,
        -- The bytes only where they are not text (not UTF-8, too large): the text holds the rest,
        -- and the batch is kept whole in memory.
        case when line_text is null then raw end as raw_bytes,
        line_bytes,
        line_text,
        json_ok,
        head,
        event_date,
        head_type,
        head_version,
        case
            when
                event_date between $landing_dt - $days_late and $landing_dt + $days_early
                then event_date
            else $landing_dt
        end as owning_date
    from routed
)

select * from final
