-- Macros of the PII policy (pipelines/lib/ingest/pii_policy.py), on top of the detector's
-- pii_class and
-- pii_scrub (pii_macros.sql).
-- Grain: per value. Parameters: ids, the event's raw identifiers (user_id, session_id, ...);
--   ipad, opad: the day's HMAC key XOR-ed with the RFC 2104 pads (see pii_hashes.sql).
-- An id shorter than 6 characters is an ordinary word ("home", "42"), not evidence: it is not
-- looked for.

-- False only when v surely holds no PII and none of the event's raw ids: a cheap first test.
create or replace temp macro pii_maybe(v, ids) as (
    regexp_matches(v, pii_re_candidates())
    or regexp_matches(v, pii_re_hidden())
    or list_bool_or(
        list_transform(ids, lambda i: length(i) >= 6 and contains(lower(v), lower(i)))
    )
);

-- The PII class of a kept identifier, or 'raw_id' when it holds one of the event's own raw ids.
create or replace temp macro pii_field_class(v, ids) as coalesce(
    pii_class(v),
    pii_second_look(v, true),
    case
        when
            list_bool_or(
                list_transform(ids, lambda i: length(i) >= 6 and contains(lower(v), lower(i)))
            )
            then 'raw_id'
    end
);

-- The id as an RE2 literal: every character RE2 gives a meaning escaped (a backslash too, so an
-- id such as CORP\jsmith is matched as written).
create or replace temp macro pii_re_literal(s) as regexp_replace(
    s, '([\\.+*?()|\[\]{}^$])', '\\\1', 'g'
);

-- Free text with one of the event's raw ids replaced by <raw_id:h>, h the first 16 hex of the
-- id's keyed hash: the prefix of the hash stored in user_id, so it still joins. Applied once per
-- id (pii_policy.scrubbed_expr nests the calls). In JSON text (is_json: filters) the id is
-- looked for as JSON writes it inside a string (quote and backslash escaped, control characters
-- as \t, \n, \u0001, ...), so the token replaces the whole escape and the text stays JSON.
create or replace temp macro pii_scrub_id(v, raw_id, ipad, opad, is_json) as case
    when length(raw_id) >= 6
        -- In any case: ALICE-42 is still alice-42.
        then regexp_replace(
            v,
            '(?i)' || pii_re_literal(
                case
                    -- As DuckDB writes a JSON string (the stored filters' text):
                    -- '"' and '\' escaped, control characters as \t, \n, \u0001, ...
                    when is_json then (to_json(raw_id)::varchar)[2:-2]
                    else raw_id
                end
            ),
            '<raw_id:' || left(sha256(opad || unhex(sha256(ipad || encode(raw_id)))), 16) || '>',
            'g'
        )
    else v
end;

-- 'pii_json_number' when scrubbing JSON text v would replace a JSON number (a card sent as a
-- number): the result would not be JSON. The pads do not matter for that, so none are bound.
create or replace temp macro pii_json_number_class(v) as case
    when not json_valid(pii_scrub(v, ''::blob, ''::blob)) then 'pii_json_number'
end;
