-- The PII detector, second part: how a match of the scan is taken apart into PII spans (the
-- windows of a run), and the public macros pii_class and pii_scrub. Loaded after pii_macros.sql
-- (the patterns, the checks and the decisions); pipelines/lib/ingest/pii.py (_match_spans,
-- _run_spans,
-- _window_class) is the Python twin.
--
-- These macros run in lambdas over a value's matches, where DuckDB sets up every function
-- (compiling its regex) once per vector: their regexes are small. A macro argument is copied
-- wherever the macro uses it, hence the one-element lists that compute a value once; lambda
-- parameters have names no argument uses. The big patterns are read from the variables that
-- pii_macros.sql sets, which DuckDB binds far faster than the macros that build them.

-- --- a match taken apart ---

-- Whether c may stand before an e-mail (a character its local part cannot hold), and whether s
-- starts like one (a quote, or local-part characters up to '@').
create or replace temp macro pii_email_prefix_char(c) as regexp_full_match(
    c, concat('[^\\A-Za-z0-9._%+', pii_re_email_letters(), '-]')
);

create or replace temp macro pii_email_start(s) as regexp_matches(
    s, concat('^(?:["\\]|[A-Za-z0-9._%+', pii_re_email_letters(), '-]+', pii_re_at(), ')')
);

-- The length of what stands before the candidate in a match m of the scan: a JSON escape (\u
-- and four hex digits, or \ and one character), '-' after a character, or one character; only
-- an e-mail may start with '-'.
create or replace temp macro pii_prefix_length(m) as case
    when starts_with(m, '\') then case when substr(m, 2, 1) = 'u' then 6 else 2 end
    when
        starts_with(m, '-') or (
            substr(m, 2, 1) = '-'
            and not (pii_email_prefix_char(left(m, 1)) and pii_email_start(substr(m, 2)))
        )
        then 2
    else 1
end;

-- The scan's alternative that matched the candidate c after the prefix p: 'email' (after what may
-- stand before one, it starts like one: the scan tries it first), 'ipv6' (it starts like one),
-- 'run'; null for none (a lone JSON escape).
create or replace temp macro pii_kind(c, p) as case
    when c = '' then null
    when
        pii_has_at(c)
        and (starts_with(p, '\') or pii_email_prefix_char(p))
        and pii_email_start(c)
        then 'email'
    when
        contains(c, ':') and regexp_matches(c, '^(?:[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{1,4}:){6})')
        then 'ipv6'
    else 'run'
end;

-- --- the windows of a run ---

-- A window as it is checked: blanks made ' ', fullwidth digits ASCII (printable ASCII as it is).
create or replace temp macro pii_plain(w) as case
    when strlen(w) = length(w) and not contains(w, '\') and not contains(w, chr(9)) then w
    else regexp_replace(translate(w, '０１２３４５６７８９', '0123456789'), pii_re_space(), ' ', 'g')
end;

-- The class of a window of a run, x its plain form: an e-mail, an IPv6 address, or the first of
-- iban, phone, ipv4, card whose shape and check it passes; or null. before: the separator or
-- prefix before it; after: the separator after it, or (last) the two characters after the run,
-- which must not glue it to a word (a letter or digit, or '-' and one); single: it is one token
-- (a token with '@' is an e-mail, whatever follows it). Beyond what pii_re_prefix refuses, no
-- phone or card starts after '.' (0.4111..., a decimal; a card may after 'a.', pii_cards.sql),
-- no phone after '+' (+<digits> is an international one: a card after '+' is one that phone is
-- not), no IPv4 after or before '.' (x.10.0.0.1, 1.2.3.4.5), no IPv6 after ':', '.', '-' or a
-- word (a token '::1' right after a
-- group: "FE80::1" ends a longer word) nor before '-' or (after the run) ':' or '.' and a word;
-- a window with ':' that is no IPv6 may be a card grouped with ':' (4111:1111:1111:1111). A
-- IBAN grouped by '-', '.' or '_' is followed by none of them and a group (ab12-cdef-...).
create or replace temp macro pii_window_class(x, before, after, last, single) as case
    when pii_has_at(x) then case when single and length(x) > 1 then 'email' end
    when last and pii_alnum(case when starts_with(after, '-') then substr(after, 2) else after end)
        then null
    when contains(x, ':')
        then case
            when
                before not in (':', '.', '-')
                and not pii_alnum(before)
                and not (
                    case
                        when last then left(after, 1) in (':', '.') and pii_alnum(substr(after, 2))
                        else after = '-'
                    end
                )
                and regexp_full_match(x, pii_re_ipv6())
                and pii_ipv6_ok(x, pii_ipv6_hexed(x))
                then 'ipv6'
            -- Else maybe a card grouped with ':' (4111:1111:1111:1111).
            when
                before <> '.'
                and regexp_full_match(x, concat('(?:', pii_re_card(), ')'))
                and pii_card_ok(x)
                then 'card'
        end
    when length(x) < 7 then null
    when
        x >= 'A'
        and regexp_full_match(x, pii_re_iban())
        and not (
            left(after, 1) in ('-', '.', '_')
            and (not last or pii_alnum(substr(after, 2)))
            and regexp_matches(x, '[._-]')
        )
        and pii_iban_ok(x)
        then 'iban'
    when
        before not in ('.', '+', 'a.')
        and regexp_full_match(x, concat('(?:', pii_re_phone(), ')'))
        and pii_phone_ok(x)
        then 'phone'
    when
        before not in ('.', 'a.')
        and not (
            case
                when last then starts_with(after, '.') and pii_alnum(substr(after, 2)) else
                    after = '.'
            end
        )
        and pii_ipv4_ok(x)
        then 'ipv4'
    when
        before <> '.'
        and regexp_full_match(x, concat('(?:', pii_re_card(), ')'))
        and pii_card_ok(x)
        then 'card'
end;

-- A run glued to a word at its end (a letter or digit right after its last letter or digit)
-- loses its last group, which belongs to that word ("...5682-4a70" in a UUID): {body, after}
-- of what remains. (Past its first piece a run ends a word but with an e-mail, which stays.)
create or replace temp macro pii_unglued(body, after) as case
    when not (pii_alnum(after) and pii_alnum(right(body, 1))) or pii_has_at(body)
        then { 'body': body, 'after': after }
    else list_transform(
        [regexp_extract(body, '^(.*?)[^A-Za-z0-9０-９]*[A-Za-z0-9０-９]+$', 1)],
        lambda gb: { 'body': gb, 'after': left(substr(body, length(gb) + 1) || after, 2) }
    )[1]
end;

-- The windows of the run tokens t (x: their plain forms; a: whether a window may start or end
-- at each; c: the plain length of the tokens up to each), the whole run aside: {i, j, w (plain),
-- b (before), a (after), last}, i and j its first and last token, by first token, then longest
-- first. A window runs from a group (or a '+' or '(' not glued to a group before it) to a group,
-- over at most 48 tokens (a phone of 15 digits, two separators between each) and 3 to 45
-- characters as checked, but an e-mail. After '-' glued to a group it starts only without a
-- letter (no IBAN) and when no letter comes before it in the run, and ends before no '-'.
create or replace temp macro pii_window_list(t, x, a, c, before, after) as flatten(
    list_transform(
        list_filter(
            range(1, len(t) + 1),
            lambda i: (
                a[i] or (
                    t[i] in ('+', '(')
                    and coalesce(a[i + 1], false)
                    and not coalesce(a[i - 1], false)
                )
            ) and not (
                coalesce(t[i - 1] = '-' and a[i - 2], false)
                and upper(pii_concat(t[1:i - 2])) <> lower(pii_concat(t[1:i - 2]))
            )
        ),
        lambda i: list_transform(
            list_filter(
                range(least(len(t), i + 47), i - 1, -1),
                lambda j: a[j] and not (i = 1 and j = len(t)) and (
                    c[j] - coalesce(c[i - 1], 0) between 3 and 45
                    or (i = j and pii_has_at(t[i]))
                ) and not (
                    coalesce(t[i - 1] = '-' and a[i - 2], false) and (
                        starts_with(case when j = len(t) then after else t[j + 1] end, '-')
                        or lower(left(t[i], 1)) <> upper(left(t[i], 1))
                    )
                )
            ),
            lambda j: {
                'i': i,
                'j': j,
                'w': pii_concat(x[i:j]),
                'b': case when i = 1 then before else t[i - 1] end,
                'a': case when j = len(t) then after else t[j + 1] end,
                'last': j = len(t)
            }
        )
    )
);

-- The span of an IPv6 candidate c after n characters (a single trailing colon is punctuation:
-- "connect to ::1: refused"), or null.
create or replace temp macro pii_ipv6_spans(n, c, before, after) as list_transform(
    [pii_ipv6_strip(c)],
    lambda v6: case
        when
            before not in (':', '.', 'a.')
            and not pii_alnum(after)
            and not (left(after, 1) in (':', '.', '-') and pii_alnum(substr(after, 2)))
            and pii_ipv6_ok(v6, pii_ipv6_hexed(v6))
            then [{ 'at': (n + 1)::bigint, 'cls': 'ipv6', 'span': v6 }]
    end
)[1];

-- --- the matches of a value ---
-- One step per list_transform over a value's matches, each adding what it computes, so that
-- what a step uses several times is computed once and lambdas stay shallow (DuckDB binds a
-- lambda's body again at each level of lambdas around it).

-- The scan over t (a value with a leading space, so that every match has what stands before
-- it): {ms, ps}, the matches and the text around them (string_split_regex: one more piece).
create or replace temp macro pii_parts(t) as {
    'ms': regexp_extract_all(t, getvariable('pii_re_scan')),
    'ps': string_split_regex(t, getvariable('pii_re_scan'))
};

-- Each match m of z (pii_parts) taken apart: n, the length of what stands before the
-- candidate c; before, that one character (pii_before); after, the two characters after the
-- match; kind (pii_kind; 'list': a card split by ';' or '|'); a run unglued (body, rafter) and
-- its plain form x. A list head that is no card is cut off (pii_list_cut).
create or replace temp macro pii_taken(z) as list_transform(
    list_transform(
        list_transform(
            list_zip(
                z.ms, z.ps[2:], z.ms[2:], z.ps[1:len(z.ms)], list_prepend(null, z.ms)[1:len(z.ms)]
            ),
            lambda q: {
                'm': struct_extract_at(q, 1),
                'n': pii_prefix_length(struct_extract_at(q, 1)),
                'after': left(struct_extract_at(q, 2) || coalesce(struct_extract_at(q, 3), ''), 2),
                'pre': pii_pre(struct_extract_at(q, 5), struct_extract_at(q, 4))
            }
        ),
        lambda pm: list_transform(
            [pii_list_cut(
                substr(pm.m, pm.n + 1), pii_before(pm.m, pm.n, pm.pre), pm.after, pm.pre
            )],
            lambda k: {
                'm': pm.m,
                'n': pm.n + coalesce(k, 0),
                'c': substr(pm.m, pm.n + coalesce(k, 0) + 1),
                'before': case
                    when k > 0 then substr(pm.m, pm.n + k, 1) else pii_before(pm.m, pm.n, pm.pre)
                end,
                'after': pm.after,
                'kind': case
                    when k = 0 then 'list'
                    when k > 0 then pii_kind(substr(pm.m, pm.n + k + 1), substr(pm.m, pm.n + k, 1))
                    else pii_kind(substr(pm.m, pm.n + 1), left(pm.m, pm.n))
                end,
                'r': pii_unglued(substr(pm.m, pm.n + coalesce(k, 0) + 1), pm.after)
            }
        )[1]
    ),
    lambda pm: {
        'm': pm.m,
        'n': pm.n,
        'c': pm.c,
        'before': pm.before,
        'after': pm.after,
        'kind': pm.kind,
        'body': pm.r.body,
        'rafter': pm.r.after,
        'x': pii_plain(pm.r.body)
    }
);

-- Then the class of a run as one window (whole), and, for a run that is no value, but neither
-- short nor printed like a card (four groups of four digits, one separator: a mistyped card or
-- a code, no phone inside), its tokens t. A run longer than 256 characters is one span of class
-- long_run, never taken apart: its windows cost time that grows faster than its length (14 s for
-- an 8 KiB message of numbers), and no value is that long, so it is replaced whole.
create or replace temp macro pii_wholes(l) as list_transform(
    list_transform(
        l,
        lambda pm: {
            'a': pm,
            'whole': case
                when pm.kind = 'list' then 'card'
                when pm.kind = 'run' and length(pm.body) > 256 then 'long_run'
                when pm.kind = 'run' then pii_window_class(pm.x, pm.before, pm.rafter, true, false)
            end
        }
    ),
    lambda pm: {
        'a': pm.a,
        'whole': pm.whole,
        't': case
            when
                pm.a.kind = 'run'
                and pm.whole is null
                and (length(pm.a.body) >= 8 or contains(pm.a.body, ':') or pii_has_at(pm.a.body))
                and not regexp_full_match(
                    pm.a.x, '[0-9]{4}(?:(?: [0-9]{4}){3}|(?:-[0-9]{4}){3}|(?:\.[0-9]{4}){3})'
                )
                then regexp_extract_all(pm.a.body, getvariable('pii_re_run_token'))
        end
    }
);

-- Then the plain form of each token and whether a window may start or end there (a group, an
-- e-mail, an IPv6 address), its windows that are values, v ({i, j, cls}, in pii_window_list's
-- order), and h, those that start a span (no window before them reaches their first token).
create or replace temp macro pii_windowed(l) as list_transform(
    list_transform(
        list_transform(
            list_transform(
                list_transform(
                    list_transform(
                        l,
                        lambda pm: {
                            'a': pm.a,
                            'whole': pm.whole,
                            't': pm.t,
                            'tx': list_transform(pm.t, lambda k: pii_plain(k)),
                            'ta': list_transform(
                                pm.t,
                                lambda k: pii_alnum(k) or pii_has_at(k) or starts_with(k, '::')
                            )
                        }
                    ),
                    lambda pm: {
                        'a': pm.a,
                        'whole': pm.whole,
                        't': pm.t,
                        'tx': pm.tx,
                        'ta': pm.ta,
                        'tc': list_transform(
                            range(1, len(pm.tx) + 1), lambda k: length(pii_concat(pm.tx[1:k]))
                        )
                    }
                ),
                lambda pm: {
                    'a': pm.a,
                    'whole': pm.whole,
                    't': pm.t,
                    'wl': case
                        when len(pm.t) > 1
                            then
                                pii_window_list(pm.t, pm.tx, pm.ta, pm.tc, pm.a.before, pm.a.rafter)
                    end
                }
            ),
            lambda pm: {
                'a': pm.a,
                'whole': pm.whole,
                't': pm.t,
                'v': list_filter(
                    list_transform(
                        pm.wl,
                        lambda wv: {
                            'i': wv.i,
                            'j': wv.j,
                            'cls': pii_window_class(wv.w, wv.b, wv.a, wv.last, wv.i = wv.j)
                        }
                    ),
                    lambda w: w.cls is not null
                )
            }
        ),
        lambda pm: {
            'a': pm.a,
            'whole': pm.whole,
            't': pm.t,
            'v': pm.v,
            'vj': list_transform(pm.v, lambda w: w.j)
        }
    ),
    lambda pm: {
        'a': pm.a,
        'whole': pm.whole,
        't': pm.t,
        'v': pm.v,
        'vj': pm.vj,
        'h': list_filter(
            range(1, len(pm.v) + 1), lambda k: k = 1 or list_max(pm.vj[1:k - 1]) < pm.v[k].i
        )
    }
);

-- {m, spans}: the spans {at (1-based, in m), cls, span} of each match, null or empty when it
-- holds no PII. A run: the whole run when it is one value, else its windows that are, those
-- that share a token merged into one span under the class of the first.
create or replace temp macro pii_spanned(l) as list_transform(
    l,
    lambda pm: {
        'm': pm.a.m,
        'spans': case
            when pm.a.kind is null then null
            when pm.a.kind = 'email'
                then [{ 'at': (pm.a.n + 1)::bigint, 'cls': 'email', 'span': pm.a.c }]
            when pm.a.kind = 'ipv6'
                then pii_ipv6_spans(pm.a.n, pm.a.c, pm.a.before, pm.a.after)
            when pm.whole is not null
                then [{ 'at': (pm.a.n + 1)::bigint, 'cls': pm.whole, 'span': pm.a.body }]
            else list_transform(
                range(1, len(pm.h) + 1),
                lambda k: {
                    'at': pm.a.n + 1 + length(pii_concat(pm.t[1:pm.v[pm.h[k]].i - 1])),
                    'cls': pm.v[pm.h[k]].cls,
                    'span': pii_concat(
                        pm.t[
                            pm.v[pm.h[k]].i:list_max(
                                pm.vj[pm.h[k]:coalesce(pm.h[k + 1] - 1, len(pm.v))]
                            )
                        ]
                    )
                }
            )
        end
    }
);

-- Every match of the scan in z (pii_parts), with its spans: {m, spans}.
create or replace temp macro pii_matches(z) as pii_spanned(pii_windowed(pii_wholes(pii_taken(z))));

create or replace temp macro pii_token(cls, span, ipad, opad) as (
    '<' || cls || ':' || left(sha256(opad || unhex(sha256(ipad || encode(span)))), 16) || '>'
);

-- A match m with its spans s replaced by their tokens; what lies between them is kept.
create or replace temp macro pii_render(m, s, ipad, opad) as case
    when coalesce(len(s), 0) = 0 then m
    else pii_concat(
        list_transform(
            range(1, len(s) + 1),
            lambda k: substr(
                m,
                case when k = 1 then 1 else s[k - 1].at + length(s[k - 1].span) end,
                s[k].at - case when k = 1 then 1 else s[k - 1].at + length(s[k - 1].span) end
            ) || pii_token(s[k].cls, s[k].span, ipad, opad)
        )
    ) || substr(m, s[-1].at + length(s[-1].span))
end;

-- --- public ---

create or replace temp macro pii_class(s) as case
    when s is null or not regexp_matches(s, getvariable('pii_re_candidates')) then null
    else list_transform(
        [pii_parts(' ' || s)],
        lambda z: list_filter(pii_matches(z), lambda x: len(x.spans) > 0)[1].spans[1].cls
    )[1]
end;

-- The text between matches interleaved with the rendered matches; the leading space is dropped
-- again.
create or replace temp macro pii_scrub(s, ipad, opad) as case
    when s is null then null
    when not regexp_matches(s, getvariable('pii_re_candidates')) then s
    else list_transform(
        [pii_parts(' ' || s)],
        lambda z: substr(
            pii_concat(
                list_transform(
                    list_zip(
                        z.ps,
                        list_append(
                            list_transform(
                                pii_matches(z), lambda x: pii_render(x.m, x.spans, ipad, opad)
                            ),
                            ''
                        )
                    ),
                    lambda p: struct_extract_at(p, 1) || struct_extract_at(p, 2)
                )
            ),
            2
        )
    )[1]
end;
