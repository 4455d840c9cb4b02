"""The JSON Schema keywords an event schema may use, listed once and grouped by what they do.

The SQL compiler (``sql_compiler.py``) compiles ``VALIDATION`` and refuses any keyword outside it
and ``ANNOTATIONS``, so a schema never carries a rule the lake silently does not check. The change
classifier (``changes.py``) reads the groups to tell a loosened constraint from a tightened
one. This module imports nothing of the project, so both can import it.
"""

from __future__ import annotations

# For readers only: changing one never changes which lines are valid.
DESCRIPTIVE = frozenset({"title", "description", "examples", "$comment"})
# How a field is protected and who may see it: changing one changes what is stored.
PII = frozenset({"x-pii", "x-pii-handling", "x-bare-digits"})
# The registry's own: the file's identity and the older majors a current version still accepts.
REGISTRY = frozenset({"$schema", "$id", "x-accepts-majors"})
# Keywords that never reject a line.
ANNOTATIONS = DESCRIPTIVE | PII | REGISTRY

# Keywords whose value bounds from below / above: raising / lowering one tightens.
LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems"})
UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})
# Keywords that only restrict: adding or changing one tightens, dropping it loosens.
RESTRICTIONS = frozenset({"const", "pattern", "x-unique-by"})
# Keywords that apply to an object / an array (a node with any of them is one).
OBJECT = frozenset(
    {"properties", "required", "additionalProperties", "maxProperties", "dependentRequired"}
)
ARRAY = frozenset({"items", "minItems", "maxItems", "x-unique-by"})
# Every keyword the SQL validator compiles.
VALIDATION = frozenset(
    {"type", "enum", *LOWER_BOUNDS, *UPPER_BOUNDS, *RESTRICTIONS, *OBJECT, *ARRAY}
)
