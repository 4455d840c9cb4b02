-- Grain: one row per distinct raw identifier of the partition (user_id, session_id, ...).
-- Parameters: $pii_ipad, $pii_opad: the day's HMAC key XOR-ed with the RFC 2104 inner / outer
--   pads; $pii_prev_ipad, $pii_prev_opad: the same for the previous key while the day is within
--   the overlap after a key rotation, else null.
-- HMAC-SHA256(key, id) = sha256(opad || sha256(ipad || id)); the secret never enters the SQL text.
-- hashed_prev: the previous key's hash, for identifiers that are bridged across a rotation
--   (user_id; pii_identifiers.bridged), null otherwise or outside the overlap.
create table pii_hashes as
with

identifiers as (
    select
        raw,
        bool_or(bridged) as bridged
    from pii_identifiers
    where raw is not null
    group by raw
),

final as (
    select
        raw,
        sha256($pii_opad || unhex(sha256($pii_ipad || encode(raw)))) as hashed,
        case
            when bridged and $pii_prev_ipad is not null
                then sha256($pii_prev_opad || unhex(sha256($pii_prev_ipad || encode(raw))))
        end as hashed_prev
    from identifiers
)

select * from final
