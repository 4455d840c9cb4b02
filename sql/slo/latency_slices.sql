-- Grain: one row per (event_date, dimension, slice) of $period_start..$period_end, for the
--   dimensions surface, device_type and bucket (experiment_id and bucket together: the arms of
--   different experiments are not one population): the slice's rankings and latency
--   percentiles, computed from traffic_parts' exact per-ranking values as traffic_daily's own
--   are (percentiles of its combination rows do not merge into a surface's). Rankings whose
--   request was not found have no dimensions: they form the slices with a null slice_value.
-- Parameters: $period_start, $period_end (dates, inclusive: the days read).
-- Inputs: view daily_parts (rollups/traffic_parts, with the event_date of its partition folder);
--   macros slices_of and slice_label (macros.sql).
with

latencies as (
    select
        event_date,
        experiment_id,
        bucket,
        surface,
        device_type,
        measure as latency_ms
    from daily_parts
    where part_name = 'latency_ms' and event_date between $period_start and $period_end
),

sliced as (
    select
        l.event_date,
        slices.s.dimension,
        slices.s.slice_value,
        count(*) as rankings,
        quantile_cont(l.latency_ms, 0.95) as latency_p95_ms,
        quantile_cont(l.latency_ms, 0.99) as latency_p99_ms
    from latencies as l,
        unnest(slices_of(l.surface, l.device_type, l.experiment_id, l.bucket)) as slices (s)
    group by l.event_date, slices.s.dimension, slices.s.slice_value, slices.s.arm
),

final as (
    select
        event_date,
        dimension,
        slice_value,
        rankings,
        latency_p95_ms,
        latency_p99_ms,
        slice_label(dimension, slice_value) as slice
    from sliced
)

select * from final
order by event_date, dimension, slice
