"""Write the labelled corpora that judge the PII detector: pii.tsv and clean.tsv (GitHub issue 19).

Every label comes from how the value was built here (a phone number assembled from a country's
numbering plan, a card number given its Luhn digit, an IBAN given its mod-97 digits), never from
the detector's patterns: this file computes its own check digits and imports nothing from
``pipelines``. Deterministic: one seeded ``random.Random``, no clock, no set iteration order.

    python tests/ingest/pii_corpus/generate.py [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import random
import re
import string
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

SEED = 19
HERE = Path(__file__).resolve().parent
PII_CLASSES = ("email", "ipv4", "ipv6", "phone", "card", "iban", "raw_id")

Row = tuple[str, str, str]  # (class, format, value): one line of pii.tsv


# --- check digits, written independently of the detector --------------------------------------


def luhn_valid(number: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that, appended to ``payload``, makes it Luhn-valid."""
    for digit in "0123456789":
        if luhn_valid(payload + digit):
            return digit
    raise AssertionError("unreachable: one of ten digits always completes a Luhn number")


def _iban_integer(text: str) -> int:
    """Letters A..Z as 10..35, digits as themselves, read as one decimal number."""
    return int("".join(str(int(char, 36)) for char in text.upper()))


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 - (BBAN + country + '00' as a number) mod 97."""
    return f"{98 - _iban_integer(bban + country + '00') % 97:02d}"


def iban_valid(iban: str) -> bool:
    compact = re.sub(r"[ ._-]", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
        return False
    return _iban_integer(compact[4:] + compact[:4]) % 97 == 1


# Self-checks against published examples, so a broken check-digit function cannot label silently.
assert luhn_check_digit("7992739871") == "3"
assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB83WEST12345698765432")
assert iban_check_digits("DE", "370400440532013000") == "89"


# --- helpers -----------------------------------------------------------------------------------


def digits(rng: random.Random, n: int, *, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(n - 1))


def group(text: str, sizes: Iterable[int], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(text[at : at + size])
        at += size
    assert at == len(text), (text, sizes)
    return sep.join(parts)


def fours(text: str, sep: str = " ") -> str:
    return sep.join(text[i : i + 4] for i in range(0, len(text), 4))


# --- phones ------------------------------------------------------------------------------------
# Each builder returns (shape, value) pairs for one draw of subscriber numbers. Numbers come from
# ranges reserved for drama/documentation where the country has one (GB 07700 900xxx and
# 020 7946 0xxx, US 555-01xx, FR 06 39 98 xx xx / 01 99 00 xx xx, AU 0491 570 xxx / 02 5550 xxxx).

# The schema's rule: a bare digit run (no '+', no '00') is a phone only with a trunk 0 and
# 10-11 digits in all; anything shorter or longer written bare is a legitimate numeric id.
BARE_TRUNK_PHONE = re.compile(r"0[1-9][0-9]{8,9}")
BARE_INTL_PHONE = re.compile(r"00[1-9][0-9]{7,13}")


def phones_gb(rng: random.Random) -> list[tuple[str, str]]:
    mobile = "7700900" + digits(rng, 3)  # 7700 900123
    london = "207946" + "0" + digits(rng, 3)  # 20 7946 0958
    m, ldn = mobile, london
    return [
        ("e164_compact", f"+44{m}"),
        ("e164_spaced", f"+44 {m[:4]} {m[4:]}"),
        ("e164_spaced", f"+44 {ldn[:2]} {ldn[2:6]} {ldn[6:]}"),
        ("e164_parens", f"+44 (0)20 {ldn[2:6]} {ldn[6:]}"),
        ("intl00_spaced", f"0044 {m[:4]} {m[4:]}"),
        ("intl00_compact", f"0044{m}"),
        ("national_spaced", f"0{m[:4]} {m[4:]}"),
        ("national_spaced", f"0{ldn[:2]} {ldn[2:6]} {ldn[6:]}"),
        ("national_parens", f"(0{ldn[:2]}) {ldn[2:6]} {ldn[6:]}"),
        ("national_compact", f"0{m}"),
        ("national_compact", f"0{ldn}"),
    ]


def phones_fr(rng: random.Random) -> list[tuple[str, str]]:
    m = "63998" + digits(rng, 4)  # 6 39 98 xx xx
    fixed = "19900" + digits(rng, 4)  # 1 99 00 xx xx
    pairs = [m[0], m[1:3], m[3:5], m[5:7], m[7:]]
    fpairs = [fixed[0], fixed[1:3], fixed[3:5], fixed[5:7], fixed[7:]]
    national = ["0" + pairs[0], *pairs[1:]]
    return [
        ("e164_compact", f"+33{m}"),
        ("e164_spaced", "+33 " + " ".join(pairs)),
        ("e164_parens", "+33 (0)" + " ".join(pairs)),
        ("intl00_spaced", "0033 " + " ".join(pairs)),
        ("national_spaced", " ".join(national)),
        ("national_spaced", " ".join(["0" + fpairs[0], *fpairs[1:]])),
        ("national_dotted", ".".join(national)),
        ("national_dashed", "-".join(national)),
        ("national_compact", "0" + m),
        ("national_compact", "0" + fixed),
    ]


def phones_de(rng: random.Random) -> list[tuple[str, str]]:
    short = "30" + digits(rng, 6, first="123456789")  # Berlin, 6-digit subscriber
    berlin = "30" + digits(rng, 8, first="123456789")  # Berlin, 8-digit subscriber
    mobile = "151" + digits(rng, 8, first="123456789")
    return [
        ("e164_compact", f"+49{mobile}"),
        ("e164_compact", f"+49{short}"),
        ("e164_spaced", f"+49 {short[:2]} {short[2:]}"),
        ("e164_spaced", f"+49 {mobile[:3]} {mobile[3:]}"),
        ("intl00_spaced", f"0049 {berlin[:2]} {berlin[2:]}"),
        ("national_spaced", f"0{short[:2]} {short[2:]}"),
        ("national_spaced", f"0{mobile[:3]} {mobile[3:]}"),
        ("national_parens", f"(0{berlin[:2]}) {berlin[2:]}"),
        ("national_slash", f"0{short[:2]}/{short[2:]}"),
        ("national_compact", f"0{berlin}"),
    ]


US_AREAS = ("202", "212", "213", "312", "415", "617", "646", "718")


def phones_us(rng: random.Random) -> list[tuple[str, str]]:
    area = rng.choice(US_AREAS)
    line = "01" + digits(rng, 2)  # 555-0100 .. 555-0199
    a, x, n = area, "555", line
    return [
        ("e164_compact", f"+1{a}{x}{n}"),
        ("e164_spaced", f"+1 {a} {x} {n}"),
        ("e164_parens", f"+1 ({a}) {x}-{n}"),
        ("e164_dashed", f"+1-{a}-{x}-{n}"),
        ("intl00_spaced", f"001 {a} {x} {n}"),
        ("national_parens", f"({a}) {x}-{n}"),
        ("national_dashed", f"{a}-{x}-{n}"),
        ("national_dotted", f"{a}.{x}.{n}"),
        ("national_spaced", f"{a} {x} {n}"),
        ("national_slash", f"{a}/{x}-{n}"),
    ]


def phones_es(rng: random.Random) -> list[tuple[str, str]]:
    m = "6" + digits(rng, 8)
    madrid = "91" + digits(rng, 7, first="23456789")
    return [
        ("e164_compact", f"+34{m}"),
        ("e164_spaced", f"+34 {m[:3]} {m[3:5]} {m[5:7]} {m[7:]}"),
        ("intl00_spaced", f"0034 {m[:3]} {m[3:5]} {m[5:7]} {m[7:]}"),
        ("national_spaced", f"{m[:3]} {m[3:5]} {m[5:7]} {m[7:]}"),
        ("national_spaced", f"{madrid[:2]} {madrid[2:5]} {madrid[5:7]} {madrid[7:]}"),
    ]


def phones_it(rng: random.Random) -> list[tuple[str, str]]:
    m = "3" + rng.choice(("20", "33", "38", "40", "47", "49")) + digits(rng, 7)
    rome = "06" + digits(rng, 8, first="3456789")
    return [
        ("e164_compact", f"+39{m}"),
        ("e164_spaced", f"+39 {m[:3]} {m[3:6]} {m[6:]}"),
        ("e164_spaced", f"+39 {rome[:2]} {rome[2:6]} {rome[6:]}"),
        ("intl00_spaced", f"0039 {m[:3]} {m[3:]}"),
        ("national_spaced", f"{m[:3]} {m[3:6]} {m[6:]}"),
        ("national_spaced", f"{m[:3]} {m[3:]}"),
        ("national_spaced", f"{rome[:2]} {rome[2:6]} {rome[6:]}"),
        ("national_compact", rome),
    ]


def phones_nl(rng: random.Random) -> list[tuple[str, str]]:
    m = "6" + digits(rng, 8, first="1234")
    ams = "20" + digits(rng, 7, first="3456789")
    return [
        ("e164_compact", f"+31{m}"),
        ("e164_spaced", f"+31 {m[0]} {m[1:]}"),
        ("e164_parens", f"+31 (0){m[0]} {m[1:]}"),
        ("intl00_compact", f"0031{m}"),
        ("national_dashed", f"0{m[0]}-{m[1:]}"),
        ("national_dashed", f"0{ams[:2]}-{ams[2:]}"),
        ("national_spaced", f"0{m[0]} {m[1:3]} {m[3:5]} {m[5:7]} {m[7:]}"),
        ("national_spaced", f"0{ams[:2]} {ams[2:5]} {ams[5:]}"),
        ("national_parens", f"(0{ams[:2]}) {ams[2:5]} {ams[5:]}"),
        ("national_compact", f"0{m}"),
    ]


def phones_in(rng: random.Random) -> list[tuple[str, str]]:
    m = digits(rng, 10, first="6789")
    delhi = "11" + digits(rng, 8, first="2345")
    return [
        ("e164_compact", f"+91{m}"),
        ("e164_spaced", f"+91 {m[:5]} {m[5:]}"),
        ("e164_dashed", f"+91-{m[:5]}-{m[5:]}"),
        ("intl00_spaced", f"0091 {m[:5]} {m[5:]}"),
        ("national_spaced", f"{m[:5]} {m[5:]}"),
        ("national_spaced", f"0{delhi[:2]} {delhi[2:6]} {delhi[6:]}"),
        ("national_dashed", f"0{delhi[:2]}-{delhi[2:]}"),
        ("national_compact", f"0{m}"),
        ("national_compact", f"0{delhi}"),
    ]


def phones_br(rng: random.Random) -> list[tuple[str, str]]:
    m = "11" + "9" + digits(rng, 8, first="6789")  # São Paulo mobile, 9 digits
    rio = "21" + digits(rng, 8, first="2345")  # Rio landline, 8 digits
    return [
        ("e164_compact", f"+55{m}"),
        ("e164_spaced", f"+55 {m[:2]} {m[2:7]}-{m[7:]}"),
        ("e164_spaced", f"+55 {m[:2]} {m[2:7]} {m[7:]}"),
        ("intl00_spaced", f"0055 {m[:2]} {m[2:7]} {m[7:]}"),
        ("national_parens", f"({m[:2]}) {m[2:7]}-{m[7:]}"),
        ("national_parens", f"({rio[:2]}) {rio[2:6]}-{rio[6:]}"),
        ("national_spaced", f"{m[:2]} {m[2:7]} {m[7:]}"),
    ]


def phones_jp(rng: random.Random) -> list[tuple[str, str]]:
    m = rng.choice(("70", "80", "90")) + digits(rng, 8, first="123456789")
    tokyo = "3" + digits(rng, 8, first="3456789")
    return [
        ("e164_compact", f"+81{m}"),
        ("e164_spaced", f"+81 {m[:2]} {m[2:6]} {m[6:]}"),
        ("e164_dashed", f"+81-{m[:2]}-{m[2:6]}-{m[6:]}"),
        ("e164_dashed", f"+81-{tokyo[0]}-{tokyo[1:5]}-{tokyo[5:]}"),
        ("intl00_spaced", f"0081 {m[:2]} {m[2:6]} {m[6:]}"),
        ("national_dashed", f"0{m[:2]}-{m[2:6]}-{m[6:]}"),
        ("national_dashed", f"0{tokyo[0]}-{tokyo[1:5]}-{tokyo[5:]}"),
        ("national_parens", f"(0{tokyo[0]}) {tokyo[1:5]}-{tokyo[5:]}"),
        ("national_compact", f"0{m}"),
        ("national_compact", f"0{tokyo}"),
    ]


AU_FICTION_MOBILE = ("491570006", "491570156", "491570157", "491570158", "491570159", "491570110")


def phones_au(rng: random.Random) -> list[tuple[str, str]]:
    m = rng.choice(AU_FICTION_MOBILE)
    syd = "25550" + digits(rng, 4)  # 02 5550 xxxx
    return [
        ("e164_compact", f"+61{m}"),
        ("e164_spaced", f"+61 {m[:3]} {m[3:6]} {m[6:]}"),
        ("e164_spaced", f"+61 {syd[0]} {syd[1:5]} {syd[5:]}"),
        ("intl00_spaced", f"0061 {m[:3]} {m[3:6]} {m[6:]}"),
        ("national_spaced", f"0{m[:3]} {m[3:6]} {m[6:]}"),
        ("national_spaced", f"0{syd[0]} {syd[1:5]} {syd[5:]}"),
        ("national_parens", f"(0{syd[0]}) {syd[1:5]} {syd[5:]}"),
        ("national_compact", f"0{m}"),
    ]


PHONE_BUILDERS: dict[str, Callable[[random.Random], list[tuple[str, str]]]] = {
    "gb": phones_gb,
    "fr": phones_fr,
    "de": phones_de,
    "us": phones_us,
    "es": phones_es,
    "it": phones_it,
    "nl": phones_nl,
    "in": phones_in,
    "br": phones_br,
    "jp": phones_jp,
    "au": phones_au,
}

# The examples the issue names, kept verbatim.
PHONE_FIXED = (
    ("e164_compact", "gb", "+447700900123"),
    ("e164_spaced", "gb", "+44 7700 900123"),
    ("e164_parens", "us", "+1 (202) 555-0143"),
    ("intl00_spaced", "gb", "0044 7700 900123"),
    ("national_spaced", "fr", "06 12 34 56 78"),
    ("national_dotted", "fr", "06.12.34.56.78"),
    ("national_parens", "us", "(202) 555-0143"),
    ("national_dashed", "us", "202-555-0143"),
    ("national_dotted", "us", "202.555.0143"),
    ("national_spaced", "gb", "020 7946 0958"),
    ("national_spaced", "de", "030 901820"),
    ("national_compact", "gb", "07700900123"),
    ("national_compact", "fr", "0612345678"),
    # Mobiles of China (1[3-9]x xxxx xxxx) and Russia (trunk 8, area in parentheses).
    ("national_spaced", "cn", "138 0013 8000"),
    ("national_spaced", "cn", "139 1234 5678"),
    ("national_dashed", "cn", "186-2000-4321"),
    ("e164_spaced", "cn", "+86 138 0013 8000"),
    ("national_parens", "ru", "8 (912) 345-67-89"),
    ("national_parens", "ru", "8 (495) 123-45-67"),
    ("national_parens", "ru", "8(812)555-12-34"),
    ("e164_parens", "ru", "+7 (912) 345-67-89"),
    ("national_spaced", "it", "333 1234567"),
    ("national_spaced", "ru", "8 912 345 67 89"),
    ("national_dashed", "ru", "8-912-345-67-89"),
    ("national_slash", "fr", "06/12/34/56/78"),
    ("national_slash", "us", "202/555-0143"),
)


def phone_rows(rng: random.Random) -> list[Row]:
    rows = [("phone", f"phone_{shape}_{cc}", value) for shape, cc, value in PHONE_FIXED]
    for _draw in range(2):
        for cc, build in PHONE_BUILDERS.items():
            rows += [("phone", f"phone_{shape}_{cc}", value) for shape, value in build(rng)]
    for _cls, fmt, value in rows:
        if fmt.startswith("phone_national_compact"):
            assert BARE_TRUNK_PHONE.fullmatch(value), value
        elif fmt.startswith("phone_intl00_compact"):
            assert BARE_INTL_PHONE.fullmatch(value), value
        else:
            assert not value.isdigit(), value
        assert 8 <= len(re.sub(r"\D", "", value)) <= 15, value
    return rows


# --- payment cards -----------------------------------------------------------------------------

# network -> (prefixes, length, grouping)
CARD_NETWORKS: dict[str, tuple[tuple[str, ...], int, tuple[int, ...]]] = {
    "visa13": (("4",), 13, (4, 3, 3, 3)),
    "visa16": (("4",), 16, (4, 4, 4, 4)),
    "visa19": (("4",), 19, (4, 4, 4, 4, 3)),
    "mastercard": (("51", "52", "53", "54", "55"), 16, (4, 4, 4, 4)),
    "mastercard2": (tuple(str(p) for p in range(2221, 2721)), 16, (4, 4, 4, 4)),
    "amex": (("34", "37"), 15, (4, 6, 5)),
    "discover": (("6011", "644", "645", "646", "647", "648", "649", "65"), 16, (4, 4, 4, 4)),
    "jcb": (tuple(str(p) for p in range(3528, 3590)), 16, (4, 4, 4, 4)),
    "maestro19": (("5018", "5020", "5038", "6304", "6759", "6761", "6763"), 19, (4, 4, 4, 4, 3)),
    "diners14": (("36", "38"), 14, (4, 6, 4)),
    "unionpay": (("62",), 16, (4, 4, 4, 4)),
    "unionpay19": (("62",), 19, (4, 4, 4, 4, 3)),
}
CARD_SEPARATORS = {
    "compact": "",
    "spaced": " ",
    "dotted": ".",
    "dashed": "-",
    "slashed": "/",
    "underscored": "_",
    "coloned": ":",
    "double_spaced": "  ",
    "spaced_dashed": " - ",
}
# Published test numbers (each network's sandbox cards).
CARD_FIXED = (
    ("visa16", "4111111111111111"),
    ("visa13", "4222222222222"),
    ("mastercard", "5555555555554444"),
    ("mastercard2", "2223003122003222"),
    ("amex", "378282246310005"),
    ("amex", "371449635398431"),
    ("discover", "6011111111111117"),
    ("jcb", "3530111333300000"),
    ("diners14", "36227206271667"),
)


def card_number(rng: random.Random, prefixes: tuple[str, ...], length: int) -> str:
    prefix = rng.choice(prefixes)
    payload = prefix + digits(rng, length - len(prefix) - 1)
    return payload + luhn_check_digit(payload)


def card_rows(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    styles = list(CARD_SEPARATORS)
    for network, number in CARD_FIXED:
        grouping = CARD_NETWORKS[network][2]
        rows.append(("card", f"card_compact_{network}", number))
        rows.append(("card", f"card_spaced_{network}", group(number, grouping, " ")))
    for network, (prefixes, length, grouping) in CARD_NETWORKS.items():
        for _draw in range(2):
            number = card_number(rng, prefixes, length)
            for style in styles:
                value = (
                    group(number, grouping, CARD_SEPARATORS[style])
                    if style != "compact"
                    else number
                )
                rows.append(("card", f"card_{style}_{network}", value))
    for _cls, _fmt, value in rows:
        number = re.sub(r"[ ./_:\-]", "", value)
        assert number.isdigit() and 13 <= len(number) <= 19 and luhn_valid(number), value
    return rows


# --- IBANs -------------------------------------------------------------------------------------


def _fr_rib_key(bank: str, branch: str, account: str) -> str:
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def _es_dc(ten_digits: str) -> str:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    dc = 11 - sum(int(d) * w for d, w in zip(ten_digits, weights, strict=True)) % 11
    return {11: "0", 10: "1"}.get(dc, str(dc))


def _be_bban(rng: random.Random) -> str:
    first = digits(rng, 10)
    check = int(first) % 97 or 97
    return f"{first}{check:02d}"


def _fr_bban(rng: random.Random) -> str:
    bank, branch, account = digits(rng, 5), digits(rng, 5), digits(rng, 11)
    return bank + branch + account + _fr_rib_key(bank, branch, account)


def _es_bban(rng: random.Random) -> str:
    bank, branch, account = digits(rng, 4), digits(rng, 4), digits(rng, 10)
    return bank + branch + _es_dc("00" + bank + branch) + _es_dc(account) + account


IBAN_BBANS: dict[str, Callable[[random.Random], str]] = {
    "GB": lambda r: r.choice(("WEST", "NWBK", "BARC", "HBUK", "LOYD", "MIDL")) + digits(r, 14),
    "DE": lambda r: digits(r, 8, first="123456789") + digits(r, 10),
    "FR": _fr_bban,
    "NL": lambda r: r.choice(("ABNA", "INGB", "RABO", "TRIO", "SNSB", "KNAB")) + digits(r, 10),
    "ES": _es_bban,
    "IT": lambda r: r.choice(string.ascii_uppercase) + digits(r, 10) + digits(r, 12),
    "BE": _be_bban,
    "CH": lambda r: digits(r, 5) + digits(r, 12),
    "PL": lambda r: digits(r, 24),
    "AT": lambda r: digits(r, 5, first="123456789") + digits(r, 11),
}
# The registry's published examples.
IBAN_FIXED = (
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "CH9300762011623852957",
    "PL61109010140000071219812874",
    "AT611904300234573201",
)
IBAN_FORMS: dict[str, Callable[[str], str]] = {
    "upper_compact": lambda iban: iban,
    "upper_grouped": fours,
    "lower_compact": str.lower,
    "lower_grouped": lambda iban: fours(iban).lower(),
    "upper_dashed": lambda iban: fours(iban, "-"),
    "lower_dashed": lambda iban: fours(iban, "-").lower(),
}


def iban_rows(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for iban in IBAN_FIXED:
        cc = iban[:2].lower()
        rows.append(("iban", f"iban_upper_grouped_{cc}", fours(iban)))
        rows.append(("iban", f"iban_lower_compact_{cc}", iban.lower()))
        rows.append(("iban", f"iban_upper_dashed_{cc}", fours(iban, "-")))
        rows.append(("iban", f"iban_upper_underscored_{cc}", fours(iban, "_")))
        rows.append(("iban", f"iban_lower_dotted_{cc}", fours(iban, ".").lower()))
    for country, bban_of in IBAN_BBANS.items():
        for _draw in range(2):
            bban = bban_of(rng)
            iban = country + iban_check_digits(country, bban) + bban
            for form, write in IBAN_FORMS.items():
                rows.append(("iban", f"iban_{form}_{country.lower()}", write(iban)))
    for _cls, _fmt, value in rows:
        assert iban_valid(value), value
    return rows


# --- IP addresses ------------------------------------------------------------------------------

IPV4_FIXED = (
    "203.0.113.77",
    "10.0.0.1",
    "255.255.255.255",
    "192.168.1.10",
    "172.16.254.3",
    "8.8.8.8",
    "1.1.1.1",
    "198.51.100.23",
    "192.0.2.1",
    "100.64.0.9",
    "127.0.0.1",
)
IPV4_NETS = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "10.0.0.0/8", "172.16.0.0/12")


def ipv4_rows(rng: random.Random) -> list[Row]:
    values = list(IPV4_FIXED)
    for net in IPV4_NETS:
        network = ipaddress.IPv4Network(net)
        for _draw in range(2):
            host = network.network_address + rng.randrange(1, network.num_addresses - 1)
            values.append(str(host))
    for _draw in range(6):  # anywhere public-looking, octets of every width
        values.append(".".join(str(rng.randrange(1, 224)) for _ in range(4)))
    for value in values:
        ipaddress.IPv4Address(value)
    return [("ipv4", "ipv4_dotted", value) for value in values]


IPV6_FIXED = (
    ("ipv6_full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ipv6_compressed", "2001:db8::8a2e:370:7334"),
    ("ipv6_compressed", "2001:db8:85a3::8a2e:370:7334"),
    ("ipv6_link_local", "fe80::1"),
    ("ipv6_link_local", "fe80::1ff:fe23:4567:890a"),
    ("ipv6_loopback", "::1"),
    ("ipv6_v4_mapped", "::ffff:192.0.2.1"),
    ("ipv6_v4_mapped", "::ffff:203.0.113.77"),
    ("ipv6_v4_embedded", "64:ff9b::198.51.100.7"),
    ("ipv6_upper", "2001:DB8::FF00:42:8329"),
    ("ipv6_zone", "fe80::1%eth0"),
)


def ipv6_rows(rng: random.Random) -> list[Row]:
    rows = [("ipv6", fmt, value) for fmt, value in IPV6_FIXED]
    doc = ipaddress.IPv6Network("2001:db8::/32")
    for _draw in range(6):
        # A /64 prefix with a SLAAC-like or a small host part, so '::' compression happens.
        prefix = int(doc.network_address) | (rng.getrandbits(32) << 64)
        host = rng.choice((rng.getrandbits(64), rng.randrange(1, 0xFFFF)))
        address = ipaddress.IPv6Address(prefix | host)
        rows.append(("ipv6", "ipv6_compressed", address.compressed))
        rows.append(("ipv6", "ipv6_full", address.exploded))
        plain = ":".join(f"{int(h, 16):x}" for h in address.exploded.split(":"))
        if plain != address.compressed:
            rows.append(("ipv6", "ipv6_uncompressed", plain))
    for _cls, _fmt, value in rows:
        ipaddress.IPv6Address(value)
    return rows


# --- e-mails -----------------------------------------------------------------------------------

FIRST = ("alice", "bob", "carol", "dmitri", "eve", "fatima", "gustavo", "hana", "ivan", "jules")
FIRST += ("kofi", "lena", "mateo", "noor", "olga", "priya", "quentin", "rosa", "sven", "wei")
LAST = ("smith", "martin", "muller", "garcia", "rossi", "devries", "sharma", "silva", "sato")
LAST += ("nguyen", "okafor", "kowalski")
DOMAINS = ("example.com", "example.org", "example.net", "example.fr", "example.de", "example.io")
SUB_DOMAINS = (
    "mail.example.com",
    "mail.sub.example.co.uk",
    "corp.example.de",
    "students.uni.example.edu",
    "eu.mail.example.com.br",
    "my-company.example.co.jp",
)
TAGS = ("promo", "news", "shop", "test", "2025", "spam")
EMAIL_FIXED = (
    ("email_dotted", "alice.leak@example.com"),
    ("email_plus_tag", "Bob+promo@mail.sub.example.co.uk"),
    ("email_upper", "CAROL.SMITH@EXAMPLE.COM"),
    # URL-encoded '@' (%40), as in a query string or a mailto: link.
    ("email_url_encoded", "alice%40example.com"),
    # HTML-escaped '@' (error pages) and the fullwidth one.
    ("email_html_escaped", "alice&#64;example.com"),
    ("email_html_escaped", "bob.martin&#x40;mail.example.org"),
    ("email_fullwidth_at", "carol\uff20example.net"),
)


def email_rows(rng: random.Random) -> list[Row]:
    pairs = list(EMAIL_FIXED)
    for _draw in range(6):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dom, sub = rng.choice(DOMAINS), rng.choice(SUB_DOMAINS)
        year = rng.randrange(1960, 2006)
        pairs += [
            ("email_simple", f"{first}@{dom}"),
            ("email_dotted", f"{first}.{last}@{dom}"),
            ("email_plus_tag", f"{first}+{rng.choice(TAGS)}@{dom}"),
            ("email_subdomain", f"{first[0]}.{last}@{sub}"),
            ("email_upper", f"{first.capitalize()}.{last.capitalize()}@{dom.upper()}"),
            ("email_digits", f"{first}{year}@{dom}"),
            ("email_underscore_hyphen", f"{first}_{last}-{rng.randrange(10, 99)}@{sub}"),
            # A user id that is itself an e-mail address is an e-mail.
            ("email_user_id", f"u-{rng.randrange(10**6):06d}@users.{dom}"),
            ("email_url_encoded", f"{first}.{last}%40{sub}"),
        ]
    return [("email", fmt, value) for fmt, value in pairs]


# --- raw user ids ------------------------------------------------------------------------------

TOKEN_ALPHABET = string.ascii_letters + string.digits


def raw_id_rows(rng: random.Random) -> list[Row]:
    rows: list[Row] = [("raw_id", "raw_id_u_padded", "u-000123")]
    for _draw in range(10):
        rows.append(("raw_id", "raw_id_u_padded", f"u-{rng.randrange(10**6):06d}"))
        rows.append(("raw_id", "raw_id_user_hex", f"user_{rng.getrandbits(24):06x}"))
        token = "".join(rng.choice(TOKEN_ALPHABET) for _ in range(20))
        rows.append(("raw_id", "raw_id_token20", token))
    return rows


# --- clean values ------------------------------------------------------------------------------


def clean_rows(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def add(kind: str, *values: str) -> None:
        out.extend((kind, value) for value in values)

    for _ in range(15):
        u = uuid.UUID(int=rng.getrandbits(128), version=4)
        add("uuid_v4_lower", str(u))
        add("uuid_v4_upper", str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper())
    add("sku", "SKU-48213-XL", "ab-1234-cd", "TSHIRT-RED-M", "SKU48213", "sku_000981_blk")
    for _ in range(8):
        add("sku", f"SKU-{rng.randrange(10000, 99999)}-{rng.choice(('XS', 'S', 'M', 'L', 'XL'))}")
        head, tail = (
            "".join(rng.choice(string.ascii_lowercase) for _ in range(2)) for _ in range(2)
        )
        add("sku", f"{head}-{rng.randrange(1000, 9999)}-{tail}")
    for width in range(1, 13):
        for _ in range(3):
            add("item_id_numeric", digits(rng, width, first="123456789"))
    add("item_id_numeric", "0", "42", "2025550143", "5551234567")
    add("item_id_zero_padded", "00042", "000123", "0000042", "00012345", "000000042817")
    add("item_id_zero_padded", "0000000001", "000000012345", "007")
    for _ in range(5):
        add("item_id_zero_padded", f"{rng.randrange(1, 99999):08d}")
    add("item_id_prefixed", "item-00042", "item_123456", "ITEM-9", "canonical:item-00107")
    for _ in range(6):
        add("item_id_prefixed", f"item-{rng.randrange(100000):05d}")
    add(
        "experiment",
        "exp-ranker-v2",
        "holdout_2025q3",
        "exp-2025-06-cold-start",
        "ab_home_feed_0612",
        "ranker_ltr_vs_bm25",
        "exp_4217_treatment",
        "control",
        "treatment-b",
        "holdout-10pct",
        "exp-diversity-lambda-0.3",
    )
    add(
        "model",
        "two-tower-v3@2025-06-01",
        "bert-base-uncased",
        "xgb-ranker-v14",
        "gpt2-medium",
        "resnet50",
        "all-MiniLM-L6-v2",
        "lightgbm-ctr-2025w23",
        "ranker@1.4.2",
        "two-tower-v3",
        "dlrm_v2.1",
        "image@sha256:" + hashlib.sha256(b"ranker-image").hexdigest(),
    )
    add(
        "version",
        "v1.2.3",
        "1.2.3",
        "2.0.0-rc.1",
        "3.11.4",
        "10.4.1.2567",
        "1.0.0+build.5",
        "v12",
        "2025.06.1",
        "0.9.0b2",
        "1.26.4",
        "v2.14.0-alpha.3",
        "12.4",
        "0.0.1-SNAPSHOT",
        "3.12.0a7",
    )
    for _ in range(3):
        add("version", f"{rng.randrange(0, 30)}.{rng.randrange(0, 30)}.{rng.randrange(0, 300)}")
    add("price", "19.99", "1 299,00", "$1,299.00", "EUR 45.50", "£7.49", "¥1,200", "0.99")
    add("price", "1.299,00 €", "45,50 €", "USD 1,000,000.00", "CHF 12.-", "R$ 89,90")
    for _ in range(4):
        add("price", f"{rng.randrange(1, 500)}.{rng.randrange(100):02d}")
        add("price", f"€{rng.randrange(1, 5000):,}.{rng.randrange(100):02d}")
    add(
        "error_code",
        "FEATURE_MISSING",
        "E_TIMEOUT_504",
        "HTTP 503",
        "ERR_CONN_RESET",
        "DEADLINE_EXCEEDED",
        "503 Service Unavailable",
        "ORA-00942",
        "E0601",
        "errno 111",
        "0x80004005",
        "SIGSEGV (11)",
        "exit code 137",
    )
    add(
        "timestamp",
        "2025-06-01T12:34:56Z",
        "2025-06-01 12:34:56.789",
        "2025-06-01T12:34:56.789+02:00",
        "2025-06-01T12:34:56+0200",
        "Sun, 01 Jun 2025 12:34:56 GMT",
        "2025-06-01T23:59:59.999999Z",
        "01/Jun/2025:12:34:56 +0000",
    )
    for _ in range(4):
        seconds = 1_735_689_600 + rng.randrange(0, 180 * 86_400)
        add("epoch_s", str(seconds))
        add("epoch_ms", str(seconds * 1000 + rng.randrange(1000)))
    add("epoch_ms", "1748822400123")
    add("epoch_s", "1748822400")
    add("date", "2025-06-01", "01/06/2025", "06/01/2025", "1 Jun 2025", "2025-W23", "20250601")
    add("date", "01.06.2025", "June 1, 2025", "2025/06/01", "2025-06")
    add("time", "12:30:45", "23:59:59.999", "08:00", "00:00:00", "7:05 PM", "12:30:45.123456")
    add("duration", "1500ms", "2m30s", "PT1H30M", "00:01:23.456", "1.5 s", "3 days", "450 µs")
    add("duration", "1h 23m 45s", "P1DT2H", "took 12.3s", "99th pct 842 ms")
    add(
        "stack_trace",
        "at com.example.Ranker::score(Ranker.java:42)",
        "at com.example.ranker.Ranker.score(Ranker.java:128)",
        "std::vector<int>::at",
        "std::out_of_range: vector::_M_range_check",
        "Foo::bar",
        "ranker::features::load",
        "thread 'main' panicked at src/lib.rs:10:5",
        'File "/app/ranker/serve.py", line 214, in score',
        "Traceback (most recent call last):",
        "map :: (a -> b) -> [a] -> [b]",
        "Ranker :: score",
        "#3 0x00007f3a2b1c4d5e in ranker::Scorer::run() at scorer.cc:88",
        "PHP Fatal error: Call to undefined method Feed\\Ranker::rank()",
        "Caused by: java.net.SocketTimeoutException: Read timed out",
        "E0601 12:34:56.789012 1234 ranker.cc:42] feature missing",
        "at async Promise.all (index 3)",
        'File "<stdin>", line 1, in <module>',
    )
    for i in range(8):
        add("hex_sha1", hashlib.sha1(f"clean-sha1-{i}".encode()).hexdigest())
        add("hex_sha256", hashlib.sha256(f"clean-sha256-{i}".encode()).hexdigest())
    for kind in ("email", "phone", "ipv4", "card", "iban", "raw_id"):
        add("hash_token", f"<{kind}:{hashlib.sha256(kind.encode()).hexdigest()[:16]}>")
    add("hash_token", "<email:1a2b3c4d5e6f7a8b>", "<email>", "<phone>", "<ipv4>", "<card>")
    add("hash_token", "<iban>", "<ipv6>", "<raw_id>")
    add(
        "url",
        "https://cdn.example.com/img/123.png",
        "https://api.example.com/v2/items/00042?locale=en-GB",
        "s3://telemetry-lake/events/dt=2025-06-01/part-00000.parquet",
        "http://feature-store.internal:8443/health",
        "https://example.com/search?q=red+shoes&page=2",
        "https://www.example.org/products/sku-48213-xl#reviews",
        "gs://models/two-tower-v3/2025-06-01/saved_model.pb",
        "https://status.example.com/incidents/2025-06-01",
        "/api/v1/recommendations?k=20&surface=home_feed",
        "https://cdn.example.com/v/1.2.3/app.min.js",
    )
    add("locale", "en-GB", "en_US", "fr-FR", "pt-BR", "de-DE", "ja-JP", "zh-Hans-CN", "es-419")
    add("locale", "nl_NL.UTF-8", "it")
    add("country_code", "GB", "FR", "US", "DE", "JP", "BR", "IN", "NL", "GBR", "826")
    add(
        "error_text",
        "feature vector missing for item 12345",
        "ranker timed out after 3000 ms",
        "candidate pool empty for surface home_feed",
        "retry 3/5 for request 9f8e7d6c",
        "model two-tower-v3@2025-06-01 returned 0 candidates",
        "HTTP 503 from feature-store.internal:8443",
        "cache miss ratio 0.42 above threshold 0.30",
        "item 00042 not found in catalog",
        "invalid locale fr-CA, falling back to en-US",
        "batch 2025-06-01T12:00:00Z rejected: 1,204 rows",
        "score NaN for 17 of 200 items",
        "embedding dim mismatch: expected 128, got 256",
        "user clicked item 4815162342 twice",
        "slow query (2.4 s): select * from items where id in (1, 2, 3)",
        "connection reset by peer after 65536 bytes",
    )
    templates = (
        "feature vector missing for item {n}",
        "ranker returned {n} candidates in {ms} ms",
        "request {n} exceeded budget by {ms}ms",
        "shard {s} of 64 lagging {ms} seconds",
        "dropped {n} events with schema version 2.{s}.0",
    )
    for template in templates:
        for _ in range(4):
            add(
                "error_text",
                template.format(
                    n=rng.randrange(1, 10**7), ms=rng.randrange(1, 100000), s=rng.randrange(64)
                ),
            )
    add("count", "1,234,567", "12,345", "987 654", "3.4M", "12k", "1.234.567", "100", "0")
    for _ in range(4):
        add("count", f"{rng.randrange(1000, 10**9):,}")
    add("percentage", "12.5%", "0.03%", "+3.2%", "-0.8%", "100%", "99.95 %", "+12%", "−4.1 pp")
    add(
        "file_path",
        "/var/log/ranker/2025-06-01.log",
        "C:\\ProgramData\\Ranker\\logs\\app.log",
        "events/event_type=click/event_date=2025-06-02/part-00000.parquet",
        "./models/two-tower-v3/weights.bin",
        "src/lib.rs",
        "/tmp/tmpa1b2c3d4/landing/dt=2025-06-02/batch-0001.jsonl.gz",
        "~/.cache/huggingface/hub",
        "ranker/serve.py:214",
    )
    add(
        "semicolon_list",
        "item-00042;item-00043;item-00107",
        "en-GB;fr-FR;de-DE",
        "home_feed;search;related",
        "a=1;b=2;c=3",
        "12;34;56",
        "click;impression;ranking;request;error",
        "v1.2.3; v1.2.4; v1.3.0",
        # Lists of ids are no card split by ';' or '|' unless printed as one and Luhn-valid.
        "12;345;6789",
        "123;456;789",
        "1111|2222",
        "1234|5678",
        "4111;1111;1111;1112",
        "5555|5555|5555|4445",
        "4111111111111112;5500000000000005;6011000000000003",
    )
    # Decimals ('.' after a digit: no card starts there) and names with a '.' before a number.
    add("decimal", "3.14159265358979323", "2.718281828459045", "0.1415926535897932")
    add("experiment", "exp.2025.06", "exp.1234567", "run.12345678901")
    # Near misses of the wider rules (cards with any separator, dashed IBANs, national phones,
    # %40 as '@'): dates, times, versions, paths, encoded text, counts.
    add("date_slashed", "2025/06/02", "02/06/2025", "2025/06/02 12:34:56", "6/2/2025 9:05 PM")
    add("time", "12:34:56", "23:59:59.999", "2025-06-02T12:34:56Z", "12:34:56:789", "00:00:00")
    add("version", "1.2.3", "v10.4.1", "3.12.4", "2.0.0-rc.1", "build 2025.06.02", "4.1.1.1111")
    add("mac", "00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E")
    add(
        "file_path",
        "/api/v2/items/4111/reviews",
        "reports/2025/06/02/summary.csv",
        "logs/2025_06_02_12_34_56.log",
        "dt=2025-06-02/hour=12",
        "C:/data/2025/0602/1234",
    )
    add("url_encoded", "q=red%20shoes&page=2", "path%2Fto%2Ffile", "off=100%25", "user%40", "a%40b")
    add("count", "333 items", "138 of 2000 done", "8 (of 12) retries", "202/555 passed", "3 of 120")
    add("code", "ab12-cdef-3456", "GB82-WEST", "DE12-2025-0001", "4111/1111/1111/1112")
    add("code", "1234:5678:9012:3456", "5555_5555_5555_4445", "2025:06:02:12:34:56")
    add("code", "4111 - 1111 - 1111 - 1112", "2025 - 06 - 02", "12  34  56", "1 - 2 - 3 - 4")
    add("html_escaped", "a &#64; b", "&#64;home", "price &#36;5", "AT&amp;T", "&#x40;admin")
    add("count", "8 912 items", "06/12/2025", "room 8-912", "8 (912)")
    add("host", "db01.prod.example.com", "de12.ab34.cd56", "be01_home_feed_v2", "gb82.west")
    return out


# Independent sanity checks on the clean corpus: what it must not contain by construction.


def _clean_problem(value: str) -> str | None:
    for run in re.findall(r"[0-9A-Za-z.]+", value):
        run = run.strip(".")
        try:
            ipaddress.IPv4Address(run)
            return f"IPv4 {run}"
        except ValueError:
            pass
    for run in re.findall(r"[0-9A-Za-z:.%]+", value):
        run = run.strip(".:")
        if ":" in run:
            try:
                ipaddress.IPv6Address(run)
                return f"IPv6 {run}"
            except ValueError:
                pass
    for local, domain in re.findall(r"([\w.+'-]+)@([\w.-]+)", value):
        labels = domain.strip(".").split(".")
        if len(labels) >= 2 and re.fullmatch(r"[A-Za-z]{2,}", labels[-1]):
            return f"e-mail {local}@{domain}"
    for run in re.findall(r"[0-9]+", value):
        if 13 <= len(run) <= 19 and run[0] in "23456" and luhn_valid(run):
            return f"card {run}"
        if BARE_TRUNK_PHONE.fullmatch(run) or BARE_INTL_PHONE.fullmatch(run):
            return f"bare phone {run}"
    for run in re.findall(r"[0-9A-Za-z]+", value):
        if 15 <= len(run) <= 34 and iban_valid(run):
            return f"IBAN {run}"
    return None


# --- writing -----------------------------------------------------------------------------------


def build() -> tuple[list[Row], list[tuple[str, str]]]:
    rng = random.Random(SEED)
    pii: list[Row] = []
    for part in (phone_rows, card_rows, iban_rows, ipv4_rows, ipv6_rows, email_rows, raw_id_rows):
        pii += part(rng)
    clean = clean_rows(rng)
    pii = list(dict.fromkeys(pii))
    seen: dict[str, str] = {}
    for cls, fmt, value in pii:
        assert cls in PII_CLASSES and fmt.startswith(cls), (cls, fmt)
        assert value not in seen, f"{value!r} labelled twice ({seen[value]}, {fmt})"
        seen[value] = fmt
    clean_values: dict[str, str] = {}
    for kind, value in clean:
        assert value not in seen, f"clean {value!r} is also PII ({seen[value]})"
        problem = _clean_problem(value)
        assert problem is None, f"clean {kind} {value!r} holds {problem}"
        clean_values.setdefault(value, kind)
    clean = [(kind, value) for value, kind in clean_values.items()]
    for _, _, value in pii:
        assert "\t" not in value and "\n" not in value and value == value.strip()
    for _, value in clean:
        assert "\t" not in value and "\n" not in value and value == value.strip()
    return pii, clean


def write(out: Path) -> None:
    pii, clean = build()
    out.mkdir(parents=True, exist_ok=True)
    lines = ["class\tformat\tvalue", *("\t".join(row) for row in pii)]
    (out / "pii.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    lines = ["kind\tvalue", *(f"{kind}\t{value}" for kind, value in clean)]
    (out / "clean.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the two files to")
    write(parser.parse_args().out)


if __name__ == "__main__":
    main()
