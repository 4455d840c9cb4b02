-- Grain: one row per valid line that is not the first copy of its event_id in the window.
-- Parameters: none; reads the `valid_rows` view (file_id, line_no, event_id, content_hash).
-- The first copy in (landing dt, file name, line) order is kept; file ids follow that order.
create table dropped as
with

ranked as (
    select
        file_id,
        line_no,
        event_id,
        content_hash,
        cast(file_id as bigint) * 4294967296 + line_no as ord
    from valid_rows
),

repeated as (
    select
        event_id,
        min(ord) as first_ord,
        arg_min(content_hash, ord) as first_hash
    from ranked
    group by event_id
    having count(*) > 1
),

final as (
    select
        ranked.file_id,
        ranked.line_no,
        case
            when ranked.content_hash = repeated.first_hash then 'duplicate'
            else 'conflicting_duplicate'
        end as fate
    from ranked
    inner join repeated on ranked.event_id = repeated.event_id
    where ranked.ord <> repeated.first_ord
)

select * from final
