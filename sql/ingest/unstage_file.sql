-- Grain: removes every staged line of one landing file (read again, whole, when it changed while
--   it was read through its owner index).
-- Parameters: $file_id.
delete from staged
where file_id = $file_id
