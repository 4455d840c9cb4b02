-- Grain: one row per valid line that is not the first copy of its event_id in the window.
-- Parameters: none; reads the `valid_rows` view (file_id, line_no, event_id, content_hash).
-- The first copy in (landing dt, file name, line) order is kept; file ids follow that order.
-- Only the lines of repeated event ids are ranked: finding those ids is one aggregate that
-- spills, and the ranking then sorts about 1 % of the day instead of all of it.
create table dropped as
with

keyed as not materialized (
    select
        file_id,
        line_no,
        event_id,
        content_hash,
        cast(file_id as bigint) * 4294967296 + line_no as ord
    from valid_rows
),

repeated as (
    select event_id
    from keyed
    group by event_id
    having count(*) > 1
),

copies as (
    select keyed.*
    from keyed
    semi join repeated on keyed.event_id = repeated.event_id
),

ranked as (
    select
        file_id,
        line_no,
        content_hash,
        row_number() over by_arrival as copy_no,
        first_value(content_hash) over by_arrival as first_hash
    from copies
    window by_arrival as (partition by event_id order by ord)
),

final as (
    select
        file_id,
        line_no,
        case
            when content_hash = first_hash then 'duplicate'
            else 'conflicting_duplicate'
        end as fate
    from ranked
    where copy_no > 1
)

select * from final
