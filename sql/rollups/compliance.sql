-- Grain: one row per (section, item) of the period's compliance report:
--   stored_rows: rows stored per (event_type, PII class) that carry fields of that class;
--   quarantined: lines quarantined per reason; duplicates: lines dropped as exact duplicates;
--   contract_violations: violations per (family, rule).
-- Parameters: $period_start, $period_end (dates, inclusive; the monthly rollup: a month).
-- Inputs: views request, ranking, impression, click, error over the period's days;
--   pii_fields (event_type, field, pii_class) from the schemas; period_quarantine,
--   period_ledger and period_contracts over the period's partitions that exist.
with

stored as (
    select
        'request' as event_type,
        count(*) as row_count
    from request
    where event_date between $period_start and $period_end
    union all
    select
        'ranking' as event_type,
        count(*) as row_count
    from ranking
    where event_date between $period_start and $period_end
    union all
    select
        'impression' as event_type,
        count(*) as row_count
    from impression
    where event_date between $period_start and $period_end
    union all
    select
        'click' as event_type,
        count(*) as row_count
    from click
    where event_date between $period_start and $period_end
    union all
    select
        'error' as event_type,
        count(*) as row_count
    from error
    where event_date between $period_start and $period_end
),

classes as (
    select
        event_type,
        pii_class,
        string_agg(field, ', ' order by field) as field_names
    from pii_fields
    group by event_type, pii_class
),

stored_rows as (
    select
        'stored_rows' as section,
        s.event_type || '/' || c.pii_class as item,
        s.row_count as item_count,
        'fields: ' || c.field_names as detail
    from stored as s
    inner join classes as c on s.event_type = c.event_type
),

quarantined as (
    select
        'quarantined' as section,
        reason as item,
        count(*) as item_count,
        null::varchar as detail
    from period_quarantine
    group by reason
),

duplicates as (
    select
        'duplicates' as section,
        'exact_duplicate' as item,
        coalesce(sum(duplicates), 0)::bigint as item_count,
        null::varchar as detail
    from period_ledger
),

contract_violations as (
    select
        'contract_violations' as section,
        family || '/' || rule as item,
        count(*) as item_count,
        null::varchar as detail
    from period_contracts
    group by family, rule
),

final as (
    select * from stored_rows
    union all
    select * from quarantined
    union all
    select * from duplicates
    union all
    select * from contract_violations
)

select * from final
order by section, item
