-- Grain: one row per (event_date, dimension, slice) of $period_start..$period_end, for the
--   dimensions surface, device_type and bucket (experiment_id and bucket together): the
--   slice's requests, impressions, clicks and errors, summed over traffic_daily's combination
--   rows, and its CTR and error rate. Events whose request was not found have no dimensions:
--   they form the slices with a null slice_value.
-- Parameters: $period_start, $period_end (dates, inclusive: the days read).
-- Inputs: view daily_traffic (rollups/traffic_daily, with the event_date of its partition folder).
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
        event_date,
        case
            when grouping(surface) = 0 then 'surface'
            when grouping(device_type) = 0 then 'device_type'
            else 'bucket'
        end as dimension,
        case
            when grouping(surface) = 0 then surface
            when grouping(device_type) = 0 then device_type
            else experiment_id || '/' || bucket
        end as slice_value,
        sum(requests)::bigint as requests,
        sum(impressions)::bigint as impressions,
        sum(clicks)::bigint as clicks,
        sum(errors)::bigint as errors
    from combinations
    group by grouping sets (
        (event_date, surface), (event_date, device_type), (event_date, experiment_id, bucket)
    )
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
        dimension || '=' || coalesce(slice_value, '(none)') as slice,
        clicks / nullif(impressions, 0) as ctr,
        errors / nullif(requests, 0) as error_rate
    from sliced
)

select * from final
order by event_date, dimension, slice
