-- The PII detector: macros that find e-mails, IPv4 and IPv6 addresses, phone numbers, payment
-- cards and IBANs in any string. This file holds the patterns and the checks (those of cards in
-- pii_cards.sql, loaded before it); pii_macros_runs.sql (loaded after it) how a match is taken
-- apart, and the public macros. lib/ingest/pii_detect.py installs all three; lib/ingest/pii.py
-- (detect_class, scrub_text) is their Python twin, with the same patterns, windows and checks,
-- held to agreement by tests/ingest/test_pii_detect.py.
--
-- Public macros (null in, null out):
--   pii_class(s varchar) -> varchar: the class of the first PII span in s ('email', 'ipv4',
--     'ipv6', 'phone', 'card', 'iban'), null when s holds none.
--   pii_scrub(s varchar, ipad blob, opad blob) -> varchar: s with each PII span replaced by
--     '<class:h>', h the first 16 hex characters of HMAC-SHA256(key, span); ipad / opad are the
--     key XOR-ed with the RFC 2104 pads (pii.hmac_pads), so the secret never enters the SQL text
--     (as in pii_hashes.sql). Clean strings come back unchanged. A span starts and ends outside
--     any JSON escape and holds no '"' or '\' but in whole escapes (a JSON-escaped tab or
--     no-break space between groups, the \" of a quoted local part), so a JSON text stays valid.
--
-- How: RE2 has no lookaround, so the scan (pii_re_scan) matches each candidate with what stands
-- before it (one character or a JSON escape), on the value with a leading space; what follows
-- it is the start of the next piece of the value (string_split_regex). Phones, cards, IBANs and
-- IPv4s are looked for in runs: numbers and IBAN groups (and e-mails and IPv6 addresses after
-- the first piece) joined by separators, one match taking a whole run, so that no value hides
-- across two matches ("4111 1111 1111 1111 5500 0000 0000 0004", "order 2025 4111 1111 1111
-- 1111"). A run that is one value is one span; otherwise every window of the run from a group
-- to a group is checked, and windows that share a token are one span, under the class of the
-- first. Checks regexes cannot express (octet ranges, Luhn, mod 97, digit counts, IBAN lengths)
-- accept a window or not. Most clean values stop at pii_re_candidates, one RE2 pass.
--
-- Decisions (the Python twin makes the same):
--   * a span stands alone: no letter or digit on either side, and no '-' joining it to a word
--     ("item-0612345678", UUID groups and hex digests hold nothing). '_' separates like ',' or
--     '/' ("card_4111111111111111", "4111111111111111_5500000000000004"): a key or file name
--     holding a value holds personal data. Inside a run, '-' between two numbers separates too
--     ("10.0.0.1-10.0.0.9"), but a value after it must be a number followed by no '-'.
--   * a bare digit run is a phone only with a trunk 0 (0[1-9] and 8-9 more digits) or after + /
--     00: other runs are ids, counts and timestamps. Separated national forms: see pii_re_phone.
--   * a card has 13-19 digits, passes Luhn and starts with 2-6 (epoch-ms timestamps start with
--     1), printed as in pii_re_card (groups split by a blank or any of ./-_:), or split by ';'
--     or '|' throughout and standing alone (pii_cards.sql). After '.' or '+' no card or phone
--     starts (0.4111..., a decimal; +<digits>, an international phone), inside a run too; but a
--     card may start after a '.' that follows a letter or starts the value (exp.4111...). Four
--     groups of four digits that fail Luhn are a mistyped card or a code: nothing inside them is
--     looked for.
--   * groups may be separated by any blank: space, tab, no-break space, the Unicode spaces, or
--     their JSON escapes (\t, \u00a0). Fullwidth digits (U+FF10-FF19) count as digits; a window
--     is checked with them made ASCII. Other scripts' digits are not looked for.
--   * an IPv4 has exactly four octets 0-255 without leading zeros: 2.14.0.1 is one, v2.14.0.1,
--     1.2.3 and 1.2.3.4.5 are not; 10.0.0.1-10.0.0.9 and 10.0.0.0/8 hold two and one.
--   * an IPv6 is a valid address with a digit, or eight full groups: '::', 'a::b', 'Foo::bar',
--     times (12:30:45) and MACs are not.
--   * an IBAN needs a country that uses IBANs, that country's exact length and mod 97 = 1, in
--     either case: a 32/40/64-hex digest never has both. Groups split by blanks or ._-; one
--     split by ._- is followed by none of them (so a UUID's first groups are none).
--   * an e-mail's local part may be quoted ("john doe"@x.io, \"john doe\"@x.io in JSON text)
--     and hold Latin, Greek and Cyrillic letters; its domain may be an IDN (written in those
--     scripts, kana, CJK or Hangul, or xn--); addresses glued by '.', '_', '%', '+' or '-'
--     are one span. Its '@' may be URL-encoded, %40 (?u=alice%40example.com, mailto:).
--   * known limits: a card right after '.' ("4111111111111111.5500000000000004": the second);
--     a grouped IBAN ending on a full group takes a word of at most four letters and digits after
--     a blank as one more group, so an e-mail there loses its start and stays ("BE68 5390 0754
--     7034 jane@x.io"); values glued to a letter ("x4111111111111111").

-- --- patterns ---
-- Built with concat() rather than '||', which DuckDB binds far more slowly in long chains.

-- A JSON escape, consumed whole so that no span starts inside one (\n0612345678 is a phone
-- after a newline, and its replacement must not leave a bare '\').
create or replace temp macro pii_re_json_escape() as '\\(?:u[0-9A-Fa-f]{4}|[^u])';

-- A blank between the groups of a number: space, tab, U+00A0, U+1680, U+2000-200A, U+202F,
-- U+205F, U+3000, or its JSON escape.
create or replace temp macro pii_re_space() as concat(
    '(?:[ ', chr(9), chr(160), chr(5760), chr(8192), '-', chr(8202), chr(8239), chr(8287),
    chr(12288), ']|\\(?:t|u(?:00(?:09|20|[Aa]0)|1680|20(?:0[0-9Aa]|2[Ff]|5[Ff])|3000)))'
);

-- The fullwidth digits U+FF10-FF19, as a range for a character class.
create or replace temp macro pii_re_fullwidth() as concat(chr(65296), '-', chr(65305));

create or replace temp macro pii_re_digit() as concat('[0-9', pii_re_fullwidth(), ']');

-- Letters beyond ASCII in an e-mail: Latin, Greek and Cyrillic (U+00C0-024F, U+0370-04FF)
-- anywhere; kana, CJK and Hangul in a domain's labels only, since those scripts are written
-- without spaces and would take the text around an address along.
create or replace temp macro pii_re_email_letters() as concat(
    chr(192), '-', chr(591), chr(880), '-', chr(1279)
);

create or replace temp macro pii_re_idn_letters() as concat(
    chr(12352), '-', chr(12543), chr(13312), '-', chr(19903), chr(19968), '-', chr(40959),
    chr(44032), '-', chr(55215)
);

-- What may stand before a span: a JSON escape, a character other than a letter, a digit, '-' or
-- '\', or '-' after such a character (a '-' between two words joins them). Some classes refuse
-- more (pii_window_class).
create or replace temp macro pii_re_prefix() as concat(
    pii_re_json_escape(), '|[^\\A-Za-z0-9-]|[^\\A-Za-z0-9]-'
);

-- What may stand before an e-mail: a JSON escape, or a character its local part cannot hold (so
-- that an e-mail starts where its local part does).
create or replace temp macro pii_re_email_prefix() as concat(
    pii_re_json_escape(), '|[^\\A-Za-z0-9._%+', pii_re_email_letters(), '-]'
);

-- A quoted local part holds printable ASCII but no ',', ':', '@', '\' or bracket, so that it
-- never spans the structure of a JSON text ("a","@b.io" is no address).
create or replace temp macro pii_re_quoted() as '[ !#-+\--9;-?A-Z^-z|~]{1,64}';

-- '@', or %40, &#64;, &#x40;, '＠'.
create or replace temp macro pii_re_at() as concat('(?:@|%40|&#64;|&#[xX]40;|', chr(65312), ')');

create or replace temp macro pii_re_label() as concat(
    '[A-Za-z0-9', pii_re_email_letters(), pii_re_idn_letters(), '-]+'
);

create or replace temp macro pii_re_address() as concat(
    '(?:"', pii_re_quoted(), '"|\\"', pii_re_quoted(), '\\"|[A-Za-z0-9._%+',
    pii_re_email_letters(),
    '-]+)',
    pii_re_at(),
    pii_re_label(),
    '(?:\.',
    pii_re_label(),
    ')*\.(?:xn--[A-Za-z0-9-]+|[A-Za-z',
    pii_re_email_letters(), ']{2,})'
);

create or replace temp macro pii_re_email() as concat(
    pii_re_address(), '(?:[._%+-]', pii_re_address(), ')*'
);

-- Anything with '::' (first, so that it takes the whole run), or eight groups (six and an
-- IPv4): times (12:30:45) and MACs are not candidates at all.
create or replace temp macro pii_re_ipv6() as (
    '[0-9A-Fa-f:]*::[0-9A-Fa-f:]*(?:\.[0-9]{1,3}){0,3}'
    || '|(?:[0-9A-Fa-f]{1,4}:){6,7}[0-9A-Fa-f]*(?:\.[0-9]{1,3}){0,3}'
);

-- The shapes a window must have, its blanks made ' ': each ' ' stands outside a character class,
-- so that replacing it by pii_re_space() gives the shape in raw text.

-- Blanks or one of ._- only between groups of four, as IBANs are printed.
create or replace temp macro pii_re_iban() as (
    '[A-Za-z]{2}[0-9]{2}(?:(?: |[._-])?[A-Za-z0-9]{4}){2,7}(?:(?: |[._-])?[A-Za-z0-9]{1,4})?'
);

-- Phone numbers.
create or replace temp macro pii_re_phone() as concat(
    -- +<country> <number>, 8-15 digits (E.164), loosely separated, then the same after 00.
    '\+[0-9](?:(?: |[.()/-]){0,2}[0-9]){7,14}',
    '|00[1-9](?:(?: |[.()/-]){0,2}[0-9]){7,14}',
    -- (area) number: (202) 555-0143, (030) 901820, (11) 91234-5678.
    '|\([0-9]{2,5}\) ?[0-9]{2,5}(?:(?: |[.-])?[0-9]{2,5})?',
    -- NANP: 202-555-0143, 202.555.0143, 202 555 0143, 202/555-0143.
    '|[2-9][0-9]{2}(?:-[0-9]{3}-| [0-9]{3} |\.[0-9]{3}\.|/[0-9]{3}-)[0-9]{4}',
    -- French pairs: 06 12 34 56 78, 06.12.34.56.78, 06-12-34-56-78, 06/12/34/56/78.
    '|0[1-9](?:(?: [0-9]{2}){4}|(?:[./-][0-9]{2}){4})',
    -- Spain (612 34 56 78, 91 336 32 27), India (98765 43210), Brazil (11 91234-5678).
    '|[6-9][0-9]{2} [0-9]{2} [0-9]{2} [0-9]{2}|[6-9][0-9] [0-9]{3} [0-9]{2} [0-9]{2}',
    '|[6-9][0-9]{4} [0-9]{5}|[1-9][0-9] 9?[0-9]{4}(?: |-)[0-9]{4}',
    -- Italy (333 1234567), China (138 0013 8000), Russia (8 (912) 345-67-89, 8 912 345 67 89).
    '|3[0-9]{2} [0-9]{6,7}|1[3-9][0-9](?: [0-9]{4} |-[0-9]{4}-)[0-9]{4}',
    '|8 ?\([0-9]{3,5}\) ?[0-9]{1,3}(?:-[0-9]{2}){2}',
    '|8(?: [0-9]{3} [0-9]{3}(?: [0-9]{2}){2}|-[0-9]{3}-[0-9]{3}(?:-[0-9]{2}){2})',
    -- A trunk 0, then one or two groups with one separator: 020 7946 0958, 03-1234-5678,
    -- 030/901820. Dates (01-02-2025, 01/02/2025) have too few digits for pii_phone_ok.
    '|0[1-9][0-9]{0,4}(?:(?: [0-9]{2,8}){1,2}|(?:-[0-9]{2,8}){1,2}|(?:/[0-9]{2,8}){1,2})',
    -- A bare run with a trunk 0: 07700900123, 0612345678.
    '|0[1-9][0-9]{8,9}'
);

create or replace temp macro pii_re_ipv4() as '[0-9]{1,3}(?:\.[0-9]{1,3}){3}';

-- Cards: pii_cards.sql.

-- A run: numbers (maybe after '+'), IBANs (letters allowed), e-mails and IPv6 addresses, joined
-- by one to three separators (or 4+ blanks) or by '_', maybe after '+' or an area code in ().
-- Greedy, so that a value glued to the next one is in the same run; but past its first number
-- it goes on only over an e-mail, an IPv6 address or a group that ends a word (\b after an ASCII
-- character, \B after a fullwidth digit) or that '_' ends, so that it never takes the start of
-- the next word ("42 8fbc::1", "7 5a@b.io"); an IBAN always ends a word.
create or replace temp macro pii_re_separator() as concat(
    '(?:(?:', pii_re_space(), '|[.()/:-]){1,3}|(?:', pii_re_space(), '){4,})'
);

-- An IBAN in a run: two letters, two digits, then any number of groups in raw text, so that
-- two IBANs in a row ("BE68 5390 0754 7034 NL91 ABNA 0417 1643 00") are one piece, which the
-- windows of the run take apart.
create or replace temp macro pii_re_iban_piece() as concat(
    '[A-Za-z]{2}[0-9]{2}(?:(?:', pii_re_space(), '|[._-])?[A-Za-z0-9]{4})*(?:(?:',
    pii_re_space(), '|[._-])?[A-Za-z0-9]{1,4})?'
);

create or replace temp macro pii_re_run_piece() as concat(
    pii_re_digit(), '+|', pii_re_iban_piece()
);

create or replace temp macro pii_re_run_piece_end() as concat(
    '\+?', pii_re_digit(), '*(?:[0-9]\b|[', pii_re_fullwidth(), ']\B)|(?:',
    pii_re_iban_piece(), ')\b'
);

create or replace temp macro pii_re_run_piece_first() as concat(
    pii_re_digit(), '+|(?:', pii_re_iban_piece(), ')\b'
);

-- Maybe after a list head (a card split by ';' or '|'), then what the scan would match after
-- its last delimiter: an e-mail, an IPv6 address or a run.
create or replace temp macro pii_re_run() as concat(
    '(?:', pii_re_list_head(), '(?:(?:', pii_re_email(), ')|(?:', pii_re_ipv6(), '))|(?:',
    pii_re_list_head(), ')?(?:',
    '(?:(?:\+?(?:', pii_re_run_piece(), ')_)+(?:', pii_re_run_piece_end(), ')?|\+?(?:',
    pii_re_run_piece_first(), ')|\(', pii_re_digit(), '+\)(?:', pii_re_run_piece_first(),
    ')?)(?:', pii_re_separator(), '(?:(?:', pii_re_email(), ')|(?:', pii_re_ipv6(),
    ')\b|(?:\+?(?:', pii_re_run_piece(), ')_)+(?:', pii_re_run_piece_end(), ')?|',
    pii_re_run_piece_end(), '))*))'
);

-- The tokens of a run: e-mails, IPv6 addresses, blanks, groups of letters and digits, single
-- separators.
create or replace temp macro pii_re_run_token() as concat(
    '(?:', pii_re_email(), ')|(?:', pii_re_ipv6(), ')|', pii_re_space(), '|[A-Za-z0-9',
    pii_re_fullwidth(), ']+|.'
);

-- The scan: an e-mail, an IPv6 or a run, each after what may stand before it; then a lone JSON
-- escape, so that escapes are consumed in order from the left. No capture groups: with them RE2
-- takes its slower engines (5x here), so pii_matches takes a match apart instead.
create or replace temp macro pii_re_scan() as concat(
    '(?:', pii_re_email_prefix(), ')(?:', pii_re_email(), ')|(?:', pii_re_prefix(), ')(?:(?:',
    pii_re_ipv6(), ')|(?:', pii_re_run(), '))|', pii_re_json_escape()
);

-- The shapes of a window.
create or replace temp macro pii_re_shapes() as concat(
    '(?:', pii_re_ipv6(), ')|(?:', pii_re_iban(), ')|(?:', pii_re_phone(), ')|(?:',
    pii_re_ipv4(), ')|(?:', pii_re_card(), ')|(?:', pii_re_card_listed(), ')'
);

-- The early exit. A span the checks accept has its class's shape, before no letter or digit and
-- after what may stand before a span (a quoted e-mail in a run also after '.' or '-'), or (a
-- phone, an IPv4 or a card) inside a run after '-' glued to a number, then before no '-' either
-- (pii_window_list); so a value without a match holds no PII. The shapes are matched with plain
-- spaces: a blank of another kind (or its JSON escape) or a fullwidth digit always goes on.
create or replace temp macro pii_re_candidates() as concat(
    '(?:^|', pii_re_email_prefix(), ')(?:', pii_re_address(), ')|[.-]["\\]|(?:^-?|',
    pii_re_prefix(), ')(?:', pii_re_shapes(), ')(?:[^A-Za-z0-9]|$)|[0-9', pii_re_fullwidth(),
    ']-(?:(?:',
    pii_re_phone(), ')|(?:', pii_re_ipv4(), ')|(?:', pii_re_card(),
    '))(?:[^A-Za-z0-9-]|$)|[', chr(9), chr(160), chr(5760), chr(8192), '-', chr(8202),
    chr(8239), chr(8287), chr(12288), pii_re_fullwidth(),
    ']|\\(?:t|u(?:00(?:09|20|[Aa]0)|1680|20(?:0[0-9Aa]|2[Ff]|5[Ff])|3000))'
);

-- ISO 13616: the countries that use IBANs, each with its one length.
create or replace temp macro pii_iban_lengths() as (
    ' AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27'
    || ' DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28'
    || ' IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22'
    || ' MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24'
    || ' SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30 '
);

-- --- checks ---
-- They run in lambdas over a value's matches, where DuckDB sets up every function (compiling
-- its regex) once per vector: so they use few regexes, small ones. A macro argument is copied
-- wherever the macro uses it, hence the one-element lists that compute a value once.

-- Whether x holds an e-mail's '@', maybe escaped (pii_re_at: alice%40example.com).
create or replace temp macro pii_has_at(x) as (
    contains(x, '@') or contains(x, '%40') or contains(x, '&#') or contains(x, chr(65312))
);

-- Whether the string x starts with a letter or a digit (fullwidth digits too).
create or replace temp macro pii_alnum(x) as regexp_matches(x, '^[A-Za-z0-9０-９]');

-- Four octets 0-255 without leading zeros.
create or replace temp macro pii_ipv4_ok(x) as regexp_full_match(
    x,
    '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])'
    || '(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}'
);

create or replace temp macro pii_last_colon(x) as length(x) - strpos(reverse(x), ':') + 1;

-- h: the address with an IPv4 tail replaced by two groups. Groups of 1-4 hex digits and at
-- most one '::'; eight groups, or at most seven with '::' and then a digit in the address v
-- ('a::b', 'Foo::bar' are identifiers).
create or replace temp macro pii_ipv6_groups_ok(h, v) as (
    regexp_full_match(
        h,
        '(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?'
        || '(?:::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?)?'
    )
    and len(list_filter(string_split(h, ':'), lambda hg: hg <> ''))
    between (case when contains(h, '::') then 0 else 8 end)
    and (case when contains(h, '::') then 7 else 8 end)
    and (not contains(h, '::') or regexp_matches(v, '[0-9]'))
);

-- v: the address; h: v with an IPv4 tail replaced by two groups (pii_ipv6_hexed).
create or replace temp macro pii_ipv6_ok(v, h) as (
    (not contains(v, '.') or pii_ipv4_ok(substr(v, pii_last_colon(v) + 1)))
    and pii_ipv6_groups_ok(h, v)
);

create or replace temp macro pii_ipv6_hexed(v) as case
    when contains(v, '.') then left(v, pii_last_colon(v) - 1) || ':0:0' else v
end;

-- A single trailing colon is punctuation ("connect to ::1: refused").
create or replace temp macro pii_ipv6_strip(body) as case
    when suffix(body, ':') and not suffix(body, '::') then left(body, length(body) - 1)
    else body
end;

-- Cards: pii_card_ok in pii_cards.sql.

-- p: a window of a phone's shape. "+1234567.89" is a signed decimal (a
-- dotted phone has several dots). National numbers have 9-12 digits, international ones 8-15
-- after the + or the 00.
create or replace temp macro pii_phone_ok(p) as (
    length(p) - length(replace(p, '.', '')) <> 1
    and length(regexp_replace(p, '[^0-9]', '', 'g'))
    between (case when starts_with(p, '+') then 8 when starts_with(p, '00') then 10 else 9 end)
    and (case when starts_with(p, '+') then 15 when starts_with(p, '00') then 17 else 12 end)
);

-- The strings of a list l, concatenated (array_to_string, a macro of DuckDB's, would compute l
-- twice).
create or replace temp macro pii_concat(l) as coalesce(list_aggr(l, 'string_agg', ''), '');

-- ISO 13616 mod 97 of a digit string (at most 68 digits): two HUGEINT chunks of at most 36
-- digits, 64 being 10^36 mod 97.
create or replace temp macro pii_mod97(n) as (
    try_cast('0' || left(n, greatest(length(n) - 36, 0)) as hugeint) % 97 * 64
    + try_cast(right(n, 36) as hugeint) % 97
) % 97;

-- x: an upper-case IBAN without spaces, of an IBAN's shape. Letters count as 10..35 in the
-- check.
create or replace temp macro pii_iban_compact_ok(x) as (
    contains(pii_iban_lengths(), ' ' || left(x, 2) || cast(length(x) as varchar) || ' ')
    and list_transform(
        [
            pii_concat(
                list_transform(
                    string_split(substr(x, 5) || left(x, 4), ''),
                    lambda ic: case when ic >= 'A' then cast(ascii(ic) - 55 as varchar) else ic end
                )
            )
        ],
        lambda id: pii_mod97(id) = 1
    )[1]
);

create or replace temp macro pii_iban_ok(c) as pii_iban_compact_ok(
    upper(translate(c, ' ._-', ''))
);

-- The big patterns, built once per connection (pii_macros_runs.sql reads them).
set variable pii_re_scan = pii_re_scan();
set variable pii_re_candidates = pii_re_candidates();
set variable pii_re_run_token = pii_re_run_token();
