-- Macros shared by the traffic models (traffic.sql, traffic_merged.sql); no parameters.
-- same_traffic_row(a, b): rows a and b (table aliases) are the same traffic row: the same
--   dimensions, a null matching a null, and the same is_all_traffic (the all-traffic row and
--   the unattributed row both have null dimensions).
-- traffic_ratios(t): the ratios of row t, as a struct to unnest into columns; each null where its
--   denominator is 0, never inf or NaN.
create temp macro same_traffic_row(a, b) as
a.is_all_traffic = b.is_all_traffic
and a.experiment_id is not distinct from b.experiment_id
and a.bucket is not distinct from b.bucket
and a.surface is not distinct from b.surface
and a.device_type is not distinct from b.device_type;

create temp macro traffic_ratios(t) as struct_pack(
    ctr := t.clicks / nullif(t.impressions, 0),
    item_coverage := t.distinct_items_impressed / nullif(t.distinct_items_ranked, 0),
    error_rate := t.errors / nullif(t.requests, 0),
    impressions_per_request := t.impressions / nullif(t.requests, 0),
    clicks_per_session := t.clicks / nullif(t.distinct_sessions, 0)
);
