-- Grain: one row per rollup row of the bundle's periods that covers at least $min_users users:
--   the viewer tier's small-cell rule (lib/catalog/tiers.py); smaller cells are withheld.
-- Parameters: $min_users (k, the viewer tier's minimum users per row).
-- Inputs: view rollup_rows: one rollup model's partitions of the bundle's periods, its period
--   key as a date, and users_covered, the model's user-count column (tiers.USER_COUNT_COLUMNS).
select * exclude (users_covered)  -- noqa: AM04
from rollup_rows
-- A NULL count is not >= k: a row that does not say how many users it covers is withheld.
where users_covered >= $min_users
-- Every column: the same rows give the same file, byte for byte.
order by all
