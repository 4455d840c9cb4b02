-- Grain: updates quarantined lines that the strict parser rejects; malformed JSON outranks
-- every reason read from the content.
-- Parameters: none; reads `strict_failures` (file_id, line_no, detail).
update fates
set
    reason = 'malformed_json',
    detail = 'not strict JSON: ' || strict_failures.detail
from strict_failures
where
    fates.file_id = strict_failures.file_id
    and fates.line_no = strict_failures.line_no
