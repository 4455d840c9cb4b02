"""Redacting a quarantined line, which may not parse: identifiers hashed, free text scrubbed, and
any raw id the line names removed from the text kept for it (the PII detector is ``pii.py``)."""

from __future__ import annotations

import json
import re

from pipelines.lib.ingest import pii_second_look
from pipelines.lib.ingest.pii import HASHED_KEYS, detect_class, hmac_hex, scrub_text
from pipelines.lib.ingest.pii_policy import MIN_RAW_ID_CHARS

# --- quarantined lines ---------------------------------------------------------------------------

# Finds `key: value` pairs in text that is not (or not only) valid JSON. The value group always
# ends the match, so a replacement keeps the key and the opening quote for readability.
_KEY_VALUE_RE = re.compile(
    # The key, quoted with " or ' and possibly backslash-escaped (JSON embedded in a string).
    r"(?P<quote>\\*[\"'])(?P<key>[^\"'\\]{1,256})(?P=quote)\s*:\s*"
    r"(?:"
    # Escaped-quote value of embedded JSON: stop at the next backslash, the escaped closing quote.
    r'\\+"(?P<escaped>[^"\\]*)'
    # Quoted values run to the closing quote or to the end of a truncated line; "\\.?" lets a
    # dangling backslash at the very end still belong to the value.
    r'|"(?P<double>[^"\\]*(?:\\.?[^"\\]*)*)'
    r"|'(?P<single>[^'\\]*(?:\\.?[^'\\]*)*)"
    # A flat container as the value: hash all of it rather than guess which part identifies.
    r"|(?P<container>[\[{][^\[\]{}]*[\]}]?)"
    # Numbers and other bare tokens; null is not an identifier and stays, as in parsed lines.
    r"""|(?!null\b)(?P<bare>[^\s,;:{}\[\]"'\\]+)"""
    r")",
    re.DOTALL,
)


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _redact_text(text: str, secret: bytes, kept: frozenset[str]) -> str:
    """Redact by pattern: the value of a key in ``kept`` is kept (scrubbed; a container's own
    pairs redacted in turn), any other key's value is hashed, and everything between is scrubbed.

    Hashes are emitted verbatim rather than scrubbed afterwards: a 64-hex digest sometimes holds a
    Luhn-valid digit run, and a scrubbed hash would no longer match the parsed-line hash.
    """
    parts: list[str] = []
    position = 0
    for match in _KEY_VALUE_RE.finditer(text):
        value = match.lastgroup
        assert value is not None  # every alternative of the value is a named group
        start = match.start(value)
        parts.append(_scrub_unescaped(text[position:start]))
        if match.group("key") in kept and match.group("key") not in HASHED_KEYS:
            parts.append(_redact_text(match.group(value), secret, kept))
        else:
            parts.append(hmac_hex(secret, match.group(value)))
        position = match.end()
    parts.append(_scrub_unescaped(text[position:]))
    return "".join(parts)


# A JSON escape: broken lines are not decoded by a parser, yet "alice\u0040example.com" is an
# e-mail address all the same.
_JSON_ESCAPE_RE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\/")


def _scrub_unescaped(text: str) -> str:
    """``scrub_text`` of ``text`` with its JSON escapes decoded first (when there are any)."""
    if "\\" in text:
        text = _JSON_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "/", text)
    scrubbed = scrub_text(text)
    # The second look (pii_second_look.py): PII only the undone text shows takes the whole piece.
    # Read as a name (every '.' a blank): a quarantined line's identifiers are kept fields too,
    # and a decimal taken for a card costs a quarantined line only its readability.
    unhidden = pii_second_look.unhide(scrubbed, is_name=True)
    found = detect_class(unhidden) if unhidden != scrubbed else None
    return f"<{found}>" if found else scrubbed


def _hash_identifier(value: object, secret: bytes) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return hmac_hex(secret, value)
    return hmac_hex(secret, json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _redact_json(value: object, secret: bytes, kept: frozenset[str]) -> object:
    if isinstance(value, str):
        # Not just scrub_text: strings often carry embedded JSON with identifiers of their own.
        return _redact_text(value, secret, kept)
    if isinstance(value, list):
        return [_redact_json(item, secret, kept) for item in value]
    if isinstance(value, dict):
        return {
            _redact_text(key, secret, kept): (
                _redact_json(item, secret, kept)
                if key in kept and key not in HASHED_KEYS
                else _hash_identifier(item, secret)
            )
            for key, item in value.items()
        }
    return value


def redact_line(text: str, secret: bytes, kept: frozenset[str]) -> str:
    """Make a quarantined raw line safe to keep: identifiers hashed, free-text PII scrubbed.

    ``kept`` names the fields whose values are kept (scrubbed): the schemas' fields that are not
    hashed. The value under any other key is hashed like an identifier, since a key the schemas do
    not know (``usr_id``, a typo) may hold one. A line that parses as JSON is redacted
    structurally and re-serialised compactly; anything else (truncated, single-quoted, garbage) is
    redacted by pattern, keeping its shape visible.
    """
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
        # allow_nan=False: 1e400 parses to inf, which must not come back out as invalid JSON.
        redacted = json.dumps(
            _redact_json(parsed, secret, kept),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return _without_raw_ids(redacted, _raw_ids_in_json(parsed), is_json=True)
    except (ValueError, RecursionError):
        # RecursionError: absurdly deep nesting is garbage too, and patterns handle it flat.
        return _without_raw_ids(_redact_text(text, secret, kept), _raw_ids_in_text(text))


# The event's own raw identifiers must not survive elsewhere in its text (a message that quotes
# the user id). Shorter ids are ordinary words. In JSON text an id is looked for as JSON writes it
# (quote and backslash escaped, control characters as \t, \n, \u0001: json.dumps, in any case as
# DuckDB's to_json), so a replacement takes the whole escape (as pii_scrub_id does in
# sql/ingest/pii_policy_macros.sql). The shortest such id is pii_policy's, the SQL twin's.
RAW_ID_PLACEHOLDER = "<raw_id>"


def _is_raw_id(value: object) -> bool:
    return isinstance(value, str) and len(value) >= MIN_RAW_ID_CHARS


def _raw_ids_in_json(value: object) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(v for k, v in node.items() if k in HASHED_KEYS and _is_raw_id(v))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _raw_ids_in_text(text: str) -> set[str]:
    found = set()
    for match in _KEY_VALUE_RE.finditer(text):
        value = match.group(match.lastgroup or 0)
        if match.group("key") in HASHED_KEYS and _is_raw_id(value):
            found.add(value)
    return found


def _without_raw_ids(redacted: str, raw_ids: set[str], is_json: bool = False) -> str:
    """``redacted`` with what is left of ``raw_ids`` (outside the hashed values) replaced; the
    longest first, so an id that contains another is replaced whole. In JSON text (``is_json``)
    only the id as JSON escapes it is looked for; in other text that form first, then as sent."""
    forms = []
    for raw in sorted(raw_ids, key=len, reverse=True):
        escaped = json.dumps(raw, ensure_ascii=False)[1:-1]
        forms += [escaped] if is_json or escaped == raw else [escaped, raw]
    lowered = redacted.lower()
    for form in forms:
        # Usually the id was hashed away: a plain search spares compiling a pattern per id.
        if form.lower() not in lowered:
            continue
        # In any case, as in SQL (pii_scrub_id): ALICE-42 is still alice-42.
        redacted = re.sub(re.escape(form), RAW_ID_PLACEHOLDER, redacted, flags=re.IGNORECASE)
        lowered = redacted.lower()
    return redacted
