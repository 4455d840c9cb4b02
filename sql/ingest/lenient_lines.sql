-- Grain: one row per staged line that DuckDB parsed but that may not be strict JSON
-- (trailing comma, NaN/Infinity, an overflowing number: see LENIENT_JSON_HINT).
-- Parameters: none; reads `staged`.
select
    file_id,
    line_no,
    line_text
from staged
where lenient_hint
