-- Macros shared by the SLO queries; no parameters.
-- slices_of(surface, device_type, experiment_id, bucket): the slices a row counts in, one per
--   dimension (surface, device_type, bucket: experiment_id and bucket together, the arms of
--   different experiments are not one population), as a list of structs to unnest. The one place
--   the dimensions are defined, so every sliced metric breaks down alike. Grouped by all of the
--   struct's fields, the slices are those of grouping sets over (surface), (device_type) and
--   (experiment_id, bucket): a bucket slice also carries its arm, [experiment_id, bucket], so
--   that an experiment_id without a bucket stays apart from no experiment, though both have a
--   null slice_value. Rows without dimensions (their request was not found) form the slices with
--   a null slice_value.
-- slice_label(dimension, slice_value): a slice's name in results and alerts.
-- ledger_days(ledger, period_start, period_end): one row per day of the period in the ledger
--   view named ``ledger``, the sums of its rows (one per landing file the day read), for
--   daily_metrics.sql and quarantine_slices.sql (a reason's share of the day's lines read adds up
--   to the day's quarantine_share only over the same lines_read). The view is named, not written
--   in: a table written in binds when the macro is created, before the views are registered.
create temp macro slices_of(surface, device_type, experiment_id, bucket) as [
    { 'dimension': 'surface', 'slice_value': surface, 'arm': null },
    { 'dimension': 'device_type', 'slice_value': device_type, 'arm': null },
    {
        'dimension': 'bucket',
        'slice_value': experiment_id || '/' || bucket,
        'arm': [experiment_id, bucket]
    }
];

create temp macro slice_label(dimension, slice_value) as
dimension || '=' || coalesce(slice_value, '(none)');

create temp macro ledger_days(ledger, period_start, period_end) as table
    select
        event_date,
        sum(lines_taken)::bigint as lines_read,
        sum(quarantined)::bigint as quarantined,
        sum(rows_written)::bigint as rows_written,
        sum(rows_landed_late)::bigint as rows_landed_late
    from query_table(ledger)
    where event_date between period_start and period_end
    group by event_date;
