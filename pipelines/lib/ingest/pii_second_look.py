"""The PII detector's second look, Python twin of ``pii_unhide`` and ``pii_second_look`` in
sql/ingest/pii_second_look.sql (same steps, same order; that file says what each undoes and
why): a value with what hides PII from the scan undone. Used by the quarantine's redaction
(``pii_redact._scrub_unescaped``), which replaces a piece whole when only the undone text shows PII.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import unquote

_LOOK_ALIKES = str.maketrans("；｜，－．＋ー–‑‐—•·", ";|,-.+-------")
_JSON_ESCAPE_RE = re.compile(r"\\u00([0-7][0-9A-Fa-f])")
_NAME_DOT_RE = re.compile(r"\.(\+?[0-9]{3})")
_STEPS = (
    (re.compile("([0-9])_([A-Za-z])"), r"\1 \2"),
    (re.compile(r"([0-9])\+([0-9])|\+([0-9]{4}[;|,])"), r"\1 \2\3"),
    (
        re.compile(r"([0-9])\+([0-9])"),
        r"\1 \2",
    ),  # once more: a one-digit group's '+' (0033+6+12) was consumed
    (re.compile(r"\\+/"), "/"),
    (re.compile("([0-9])[ \t\xa0]*([;|])[ \t\xa0;|]*([0-9])"), r"\1\2\3"),
    (re.compile("[^\x00-\x7f\uff10-\uff19]\\."), "a."),
    (re.compile("([A-Za-z]):([0-9A-Fa-f]{1,4}:|:)"), r"\1 \2"),
)


def _unescape(text: str) -> str:
    """JSON's ASCII escapes, then URL percent-escapes decoded (none when they are no UTF-8: the
    SQL's url_decode fails and try() keeps the text); a '%20' left is a blank."""
    text = _JSON_ESCAPE_RE.sub(r"%\1", text)
    with contextlib.suppress(UnicodeDecodeError):
        text = unquote(text, errors="strict")
    return text.replace("%20", " ")


def unhide(text: str, is_name: bool = False) -> str:
    """``text`` as the second look reads it (``pii_unhide``; in a name, first, a '.' before three
    digits, or '+' and three, is a blank)."""
    if is_name:
        text = _NAME_DOT_RE.sub(r" \1", text)
    text = _unescape(text).translate(_LOOK_ALIKES)
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    return text
