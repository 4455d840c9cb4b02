-- The PII detector's second look: a value with what hides PII from the scan (pii_macros.sql)
-- undone, for a class the first look missed. Loaded after the detector, before the policy's
-- macros (pii_policy_macros.sql), which use it on kept identifiers (pii_field_class) and on
-- scrubbed free text (pii_scrub_whole). pipelines/lib/ingest/pii_second_look.py is the Python
-- twin, with
-- the same steps in the same order (tests/ingest/test_pii_second_look.py holds them equal).
-- Grain: per value. Parameters: is_name, the value is an identifier; ipad, opad: the day's HMAC
--   key XOR-ed with the RFC 2104 pads (see pii_hashes.sql).
--
-- The steps, in order:
--   1. escapes: JSON's \u0000-\u007f and URL percent-escapes decoded (a value whose escapes are
--      no UTF-8 keeps them all); then a '%20' left is a blank;
--   2. look-alikes: fullwidth ; | , - . + and the katakana long mark, Unicode dashes, bullets
--      and middle dots are their ASCII kin;
--   3. a '_' between a digit and a letter is a blank (1111_note); a '+' between digits (a
--      URL-encoded blank, twice for one-digit groups) or before a list of groups is a blank;
--      a JSON-escaped '/' is a '/';
--   4. blanks and doubles around ';' or '|' between two digits go (4111 ; 1111;;1111); not
--      around ',', which prose lists of years and ports write so ("2023, 2024, 2025, 2026");
--   5. a '.' after a character beyond ASCII follows a letter (clé.4111..., in any script);
--   6. a ':' after a letter, before an IPv6 group, is a blank (addr:2001:db8::1).
--   In a name (is_name), first, a '.' before three digits (or '+' and three) is a blank: a name
--   holds no decimals (exp/.4111..., v2.4111..., exp.0612345678); dotted dates (exp.09.21.24)
--   stay.
-- No step joins digits that were apart except across what step 4 drops, so clean values stay
-- clean. Free text in which only the second look finds PII is replaced whole: no span of the
-- undone text maps back onto the value.

create or replace temp macro pii_unhide_escapes(v) as replace(
    list_transform(
        [regexp_replace(v, '\\u00([0-7][0-9A-Fa-f])', '%\1', 'g')],
        lambda e: coalesce(try(url_decode(e)), e)
    )[1],
    '%20',
    ' '
);

create or replace temp macro pii_unhide(v) as regexp_replace(
    regexp_replace(
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(
                            translate(
                                pii_unhide_escapes(v),
                                '；｜，－．＋ー–‑‐—•·',
                                ';|,-.+-------'
                            ),
                            '([0-9])_([A-Za-z])', '\1 \2', 'g'
                        ),
                        '([0-9])\+([0-9])|\+([0-9]{4}[;|,])', '\1 \2\3', 'g'
                    ),
                    '([0-9])\+([0-9])', '\1 \2', 'g'
                ),
                '\\+/', '/', 'g'
            ),
            '([0-9])[ \t\x{a0}]*([;|])[ \t\x{a0};|]*([0-9])', '\1\2\3', 'g'
        ),
        '[^\x00-\x7f０-９]\.', 'a.', 'g'
    ),
    '([A-Za-z]):([0-9A-Fa-f]{1,4}:|:)', '\1 \2', 'g'
);

create or replace temp macro pii_unhide_name(v) as pii_unhide(
    regexp_replace(v, '\.(\+?[0-9]{3})', ' \1', 'g')
);

-- What pii_unhide would change in free text: it is called only where this cheap test holds.
create or replace temp macro pii_re_hidden() as concat(
    '\\u00[0-7]|%[0-9A-Fa-f]{2}|[；｜，－．＋ー–‑‐—•·]|[0-9][_+][0-9A-Za-z]|\+[0-9]{4}[;|,]|\\+/',
    '|[0-9][ \t\x{a0}]+[;|]|[;|][ \t\x{a0};|]+[0-9]|[^\x00-\x7f]\.|[A-Za-z]:[0-9A-Fa-f:]'
);

-- The class the second look finds in v (null when undoing changes nothing: the first look
-- has already seen that text).
create or replace temp macro pii_second_look(v, is_name) as case
    when is_name or regexp_matches(v, pii_re_hidden())
        then list_transform(
            [case when is_name then pii_unhide_name(v) else pii_unhide(v) end],
            lambda u: case when u <> v then pii_class(u) end
        )[1]
end;

-- Free text after pii_scrub: when the second look still finds PII, the whole value becomes one
-- token, '<class:h>' (h the first 16 hex of its keyed hash), as a JSON string in JSON text, so
-- the text stays JSON. Rare, and failing closed.
create or replace temp macro pii_whole_token(c, v, ipad, opad) as concat(
    '<', c, ':', left(sha256(opad || unhex(sha256(ipad || encode(v)))), 16), '>'
);

create or replace temp macro pii_scrub_whole(v, ipad, opad, is_json) as case
    when not regexp_matches(v, pii_re_hidden()) then v
    else list_transform(
        [pii_second_look(v, false)],
        lambda c: case
            when c is null then v
            when is_json then to_json(pii_whole_token(c, v, ipad, opad))::varchar
            else pii_whole_token(c, v, ipad, opad)
        end
    )[1]
end;
