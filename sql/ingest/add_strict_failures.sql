-- Grain: appends one batch of strict-parser failures (`strict_failures_batch`, registered from
--   Arrow) to `strict_failures`.
-- Parameters: none.
insert into strict_failures
select
    file_id,
    line_no,
    detail
from strict_failures_batch
