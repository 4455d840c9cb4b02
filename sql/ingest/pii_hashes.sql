-- Grain: one row per distinct raw identifier of the partition (user_id, session_id, ...).
-- Parameters: $pii_ipad, $pii_opad: the HMAC key XOR-ed with the RFC 2104 inner / outer pads.
-- HMAC-SHA256(key, id) = sha256(opad || sha256(ipad || id)); the secret never enters the SQL text.
create table pii_hashes as
with

identifiers as (
    select distinct raw
    from pii_identifiers
    where raw is not null
),

final as (
    select
        raw,
        sha256($pii_opad || unhex(sha256($pii_ipad || encode(raw)))) as hashed
    from identifiers
)

select * from final
