"""The reference meaning of "a valid line": strict JSON plus the event's JSON Schema.

Ingest validates in DuckDB (``sql_compiler``); this module is the yardstick it is tested against,
and the strict parser ingest falls back on for the rare lines DuckDB's lenient reader accepts.

Two rules are stated here once:

* strict JSON is RFC 8259 with no duplicate object keys, no NaN/Infinity and no number that
  overflows a double, in text that is valid UTF-8 (lone surrogates cannot be stored);
* ``pattern`` follows ECMA-262 as JSON Schema requires: ``$`` matches only at the end of the string
  (Python's ``re`` also matches before a final newline), and ``x-unique-by`` (our one extension)
  means no two array elements share the value of that key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
from jsonschema import validators

# Lines DuckDB's lenient parser may accept but strict JSON rejects: trailing commas, NaN/Infinity
# tokens, and numbers that could overflow a double (any exponent, or 300 digits before the point).
# Only these few lines are re-parsed strictly in Python; a false alarm costs one json.loads. Such
# a token starts a value, so it follows a ':', ',' or '['. One pattern per separator: each starts
# with a literal that RE2 finds with memchr, where one alternation over all three made it step
# through every byte (about 2x slower over a day's lines; a line matching any one is suspect).
_LENIENT_VALUE = r"\s*[-+]?(?:[nN][aA][nN]|[iI][nN][fF]|[0-9][0-9.]*[eE]|[0-9]{300})"
LENIENT_JSON_HINTS = (
    ":" + _LENIENT_VALUE,
    r",(?:" + _LENIENT_VALUE + r"|\s*[\]}])",
    r"\[" + _LENIENT_VALUE,
)


class StrictJsonError(ValueError):
    pass


def _reject_constant(token: str) -> Any:
    raise StrictJsonError(f"{token} is not JSON")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {token[:32]} overflows a double")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise StrictJsonError("duplicate key in an object")
    return result


def _check_encodable(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_encodable(item)
    elif isinstance(value, list):
        for item in value:
            _check_encodable(item)


def strict_loads(text: str) -> Any:
    """Parse one line as strict JSON; raises ``StrictJsonError`` (a ValueError) otherwise."""
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicate_keys,
        )
        _check_encodable(value)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeEncodeError too
        raise StrictJsonError(str(exc)) from exc
    return value


def _ecma(pattern: str) -> re.Pattern[str]:
    # An unescaped final `$` means end of input in ECMA-262; `\Z` is that in Python.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _unique_by(validator: Any, key: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not validator.is_type(instance, "array"):
        return
    seen: list[Any] = []
    for item in instance:
        if isinstance(item, dict) and key in item:
            if any(item[key] == other for other in seen):
                yield jsonschema.ValidationError(f"two items share {key} = {item[key]!r}")
                return
            seen.append(item[key])


_Reference = validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _pattern, "x-unique-by": _unique_by}
)


@cache
def _validator(schema_json: str) -> Any:
    return _Reference(json.loads(schema_json))


def reference_validator(schema: dict[str, Any]) -> Any:
    """A ``jsonschema`` 2020-12 validator with the two rules above."""
    return _validator(json.dumps(schema, sort_keys=True))


def explain(schema: dict[str, Any], instance: Any) -> list[str]:
    """``path:keyword`` for every way ``instance`` breaks ``schema`` (empty when valid)."""
    errors = reference_validator(schema).iter_errors(instance)
    return sorted(
        "".join(f"/{p}" for p in error.absolute_path) + f":{error.validator}" for error in errors
    )
