-- Grain: one row per (event_date, dimension, slice) of $period_start..$period_end, for the
--   dimensions surface, device_type and bucket (experiment_id and bucket together): the
--   slice's requests, impressions, clicks and errors, summed over traffic_daily's combination
--   rows, and its CTR and error rate. Events whose request was not found have no dimensions:
--   they form the slices with a null slice_value.
-- Parameters: $period_start, $period_end (dates, inclusive: the days read).
-- Inputs: view daily_traffic (rollups/traffic_daily, with the event_date of its partition folder);
--   macros slices_of and slice_label (macros.sql).
with

combinations as (
    select
        event_date,
        experiment_id,
        bucket,
        surface,
        device_type,
        requests,
        impressions,
        clicks,
        errors
    from daily_traffic
    where not is_all_traffic and event_date between $period_start and $period_end
),

sliced as (
    select
        c.event_date,
        slices.s.dimension,
        slices.s.slice_value,
        sum(c.requests)::bigint as requests,
        sum(c.impressions)::bigint as impressions,
        sum(c.clicks)::bigint as clicks,
        sum(c.errors)::bigint as errors
    from combinations as c,
        unnest(slices_of(c.surface, c.device_type, c.experiment_id, c.bucket)) as slices (s)
    group by c.event_date, slices.s.dimension, slices.s.slice_value, slices.s.arm
),

final as (
    select
        event_date,
        dimension,
        slice_value,
        requests,
        impressions,
        clicks,
        errors,
        slice_label(dimension, slice_value) as slice,
        clicks / nullif(impressions, 0) as ctr,
        errors / nullif(requests, 0) as error_rate
    from sliced
)

select * from final
order by event_date, dimension, slice
