-- Grain: one row per (event type, schema version) that a staged line still to be checked
--   declares.
-- Parameters: none; reads `staged`.
select distinct
    event_type,
    schema_version
from staged
where reason is null
