-- Grain: one row: how many values the PII detector has to classify.
-- Parameters: none; reads `pii_candidates`.
select count(*) as candidates
from pii_candidates
