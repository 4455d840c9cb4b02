-- Grain: appends one row per line of the routed batch (`routed_batch`, route_lines.sql) to
--   `line_owners`: the partition that owns it (lib/ingest/owner_index.py remembers them per file).
-- Parameters: $file_id.
insert into line_owners
select
    $file_id as file_id,
    line_no,
    owning_date
from routed_batch
