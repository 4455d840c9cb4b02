-- Grain: one row: whether the PII detector has work on this day (`flagged`: values the first
--   tests flagged; `suspects`: lines that repeat one of their own raw identifiers).
-- Parameters: none; reads the `pii_flagged` variable and `pii_id_suspects`.
select
    len(getvariable('pii_flagged')) as flagged,
    (select count(*) from pii_id_suspects) as suspects
