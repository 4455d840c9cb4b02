-- Grain: updates `fates`: each valid line of a user erased on or after this partition's day
--   (`erased_lines`: file_id, line_no) ends as 'erased' instead of 'row'.
-- Parameters: none.
update fates
set fate = 'erased'
from erased_lines
where
    fates.file_id = erased_lines.file_id
    and fates.line_no = erased_lines.line_no
