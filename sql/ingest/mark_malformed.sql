-- Grain: updates staged lines that DuckDB's lenient parser accepted but strict JSON rejects;
-- malformed JSON outranks every reason found by reading the (leniently parsed) content.
-- Parameters: none; reads `strict_failures` (file_id, line_no, detail) found by the strict parser.
update staged
set
    reason = 'malformed_json',
    detail = 'not strict JSON: ' || strict_failures.detail
from strict_failures
where
    staged.file_id = strict_failures.file_id
    and staged.line_no = strict_failures.line_no
