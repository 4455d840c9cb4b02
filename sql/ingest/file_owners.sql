-- Grain: one row per non-blank line of one landing file: its line number and owning partition,
--   in line order (what lib/ingest/owner_index.py writes).
-- Parameters: $file_id.
select
    line_no,
    owning_date
from line_owners
where file_id = $file_id
order by line_no
