-- One partition's content fingerprint: the same however its rows are split into files or ordered.
-- Grain: one row for the whole partition.
-- Parameters: $files, the URLs of every Parquet file of the partition.
-- content_checksum is the sum of every row's 64-bit hash (all columns, taken as one struct), a
-- hugeint: a lost, added, duplicated or altered row changes it; row order and file boundaries
-- do not.
-- It proves a rewrite kept the rows; it is not a cryptographic digest.
select
    count(*) as row_count,
    coalesce(sum(hash(partition_row)), 0) as content_checksum
from read_parquet($files, hive_partitioning = false, union_by_name = true) as partition_row
