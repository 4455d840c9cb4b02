-- Grain: one row per landing file (file_id) with staged lines: how many this partition took.
-- Parameters: none; reads `staged`.
select
    file_id,
    count(*) as lines_taken
from staged
group by file_id
