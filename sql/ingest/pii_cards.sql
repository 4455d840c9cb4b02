-- The PII detector's payment cards: how a card is printed, its check, a card split by a list
-- delimiter and a card after a name's '.'. Loaded first (pii_macros.sql builds its patterns on
-- these), so these macros use DuckDB's functions only. pipelines/lib/ingest/pii_cards.py is the
-- Python
-- twin, with the same patterns and rules.
--
--   * a card has 13-19 digits, passes Luhn and starts with 2-6, printed as in pii_re_card.
--   * ';', '|' and ',' delimit lists of ids, so they end a run. A card whose groups one of
--     them splits throughout (4111;1111;1111;1111, 4111|1111|1111|1111, 4111,1111,1111,1111) is
--     met by the scan as a list head (pii_re_list_head) before a run or an e-mail or IPv6
--     address. The whole match is a card when it is printed as one (pii_re_card_listed: one
--     delimiter throughout, groups as cards are grouped), passes Luhn and is in no longer list:
--     no delimiter after a digit before it, no delimiter and a digit after it (a lone delimiter,
--     card=4111;1111;1111;1111; or a table's |4111|1111|1111|1111|, is no list). Else the head
--     holds nothing (its groups are too short for a value) and what follows its last delimiter
--     is taken apart as when the scan matched it alone. Known limit: a blank or separator and a
--     number after it join its last group into a run, and the card stays (4111;1111;1111;1111
--     12/25).
--   * '.' after a digit makes a decimal (0.4111..., 1.4111...): no card starts there. After an
--     ASCII letter, or at the start of a value, it is part of a name (exp.4111...): a card may
--     start there, but no phone or IPv4 address (x.10.0.0.1), so the run gets 'a.' (no token of
--     a run) as what stands before it.

-- Groups split by one to three blanks or any of ./-_: (4111/1111/1111/1111, 4111 - 1111 - ...)
-- or by four blanks or more: a bare run; a group of four, then groups of four or three, the last
-- one maybe shorter (4-4-4-4, 4-4-4-4-3, 4-3-3-3); 4-6-5 or 4-6-4 (Amex, Diners).
create or replace temp macro pii_re_card() as concat(
    '[2-6][0-9]{12,18}',
    '|[2-6][0-9]{3}(?:(?:(?: |[./:_-]){1,3}| {4,})[0-9]{3,4}){2,3}',
    '(?:(?:(?: |[./:_-]){1,3}| {4,})[0-9]{1,4})?',
    '|[2-6][0-9]{3}(?:(?: |[./:_-]){1,3}| {4,})[0-9]{6}',
    '(?:(?: |[./:_-]){1,3}| {4,})[0-9]{4,5}'
);

create or replace temp macro pii_re_list_head() as '[2-6][0-9]{3}(?:[;|,][0-9]{3,6}){1,3}[;|,]';

-- As pii_re_card groups a card, with ';', '|' or ',' throughout.
create or replace temp macro pii_re_card_listed() as concat(
    '[2-6][0-9]{3}(?:(?:;[0-9]{3,4}){2,3}(?:;[0-9]{1,4})?|;[0-9]{6};[0-9]{4,5})',
    '|[2-6][0-9]{3}(?:(?:\|[0-9]{3,4}){2,3}(?:\|[0-9]{1,4})?|\|[0-9]{6}\|[0-9]{4,5})',
    '|[2-6][0-9]{3}(?:(?:,[0-9]{3,4}){2,3}(?:,[0-9]{1,4})?|,[0-9]{6},[0-9]{4,5})'
);

-- c: a window of a card's shape (digits and ' ./:_-', or ';', '|' or ','): 13-19 digits and Luhn,
-- the digits read from the right, every second one doubled (its digit sum); the total must end
-- in 0.
create or replace temp macro pii_card_ok(c) as list_transform(
    [translate(c, ' ./:_-;|,', '')],
    lambda cd: length(cd) between 13 and 19
    and list_sum(
        list_transform(
            range(1, length(cd) + 1),
            lambda ck: (ascii(substr(cd, ck, 1)) - 48) * (1 + (length(cd) - ck) % 2)
            - case when (length(cd) - ck) % 2 = 1 and substr(cd, ck, 1) > '4' then 9 else 0 end
        )
    ) % 10 = 0
)[1];

-- For the candidate c of a match of the scan, before: what stands before it (pii_before), pre:
-- the character before the match, after: the two characters after the match: null when c starts
-- with no list head; 0 when it is a card as a whole (no '.' before it, no delimiter after a
-- digit, nothing after it that goes on with a list (a delimiter and a digit) or glues it to a
-- word); else the length of its list head, its last delimiter included.
create or replace temp macro pii_list_cut(c, before, after, pre) as case
    when not regexp_matches(c, '^[0-9]+[;|,]')
        then null
    when
        regexp_full_match(c, pii_re_card_listed())
        and before <> '.'
        and not (before in (';', '|', ',') and regexp_full_match(pre, '[0-9０-９]'))
        and not regexp_matches(after, '^(?:[;|,][0-9０-９]|-?[A-Za-z0-9０-９])')
        and pii_card_ok(c)
        then 0
    else length(regexp_extract(c, '^(?:[0-9]+[;|,])+'))
end;

-- The character before a match of the scan: the last one of the match before it (prev, null
-- for the first) and the text between them (piece), '' at the start of the value (the scan's
-- text starts with a space that the value has not).
create or replace temp macro pii_pre(prev, piece) as coalesce(
    right(prev || piece, 1), right(substr(piece, 2), 1)
);

-- What stands before the candidate of a match m of the scan, when n characters do ('' unless
-- one) and pre before m ('' at the start of the value): 'a.' for a '.' after an ASCII letter or
-- at the start.
create or replace temp macro pii_before(m, n, pre) as case
    when n <> 1 then ''
    when starts_with(m, '.') and regexp_full_match(pre, '[A-Za-z]?') then 'a.'
    else left(m, 1)
end;
