"""The typed column an event property is stored in, and the SQL that fills it from the property's
value (``sql_compiler.py`` compiles the checks; this module only the storage shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# None: a field of an older version, from before every string declared its policy.
PII_HANDLINGS = (None, "hash", "scrub", "identifier")
_SQL_TYPES = {"string": "varchar", "integer": "bigint", "number": "double", "boolean": "boolean"}


class SchemaCompileError(ValueError):
    """The schema uses something the SQL validator cannot check exactly."""


@dataclass(frozen=True)
class Column:
    name: str
    schema_type: str
    sql_type: str
    expr: str
    description: str
    pii: str
    pii_handling: str | None


def struct_type(schema: dict[str, Any], where: str) -> str:
    kind = schema.get("type")
    if kind == "object":
        fields = ", ".join(
            f"{name} {struct_type(sub, f'{where}/{name}')}"
            for name, sub in schema.get("properties", {}).items()
        )
        return f"struct({fields})"
    if kind == "array":
        return f"{struct_type(schema['items'], f'{where}/*')}[]"
    if isinstance(kind, str) and kind in _SQL_TYPES:
        return _SQL_TYPES[kind]
    raise SchemaCompileError(f"{where}: no storage type for {kind!r}")


def column(name: str, spec: dict[str, Any], value: str, text: str) -> Column:
    """``value``: the property's value as JSON (for an array of objects: already a list of
    structs, whose string leaves are decoded); ``text``: its decoded text."""
    kind = spec.get("type")
    handling = spec.get("x-pii-handling")
    if kind == "string":
        sql_type, expr = "varchar", text
    elif kind in ("integer", "number"):
        sql_type = _SQL_TYPES[kind]
        expr = f"try_cast({text} as {sql_type})"
    elif kind == "object":
        # Free-form objects (filters) are kept as JSON text: their keys are the producer's choice.
        sql_type, expr = "varchar", f"cast({value} as varchar)"
    elif kind == "array":
        sql_type = struct_type(spec, f"/{name}")
        expr = f"try_cast({value} as {sql_type})"
    else:
        raise SchemaCompileError(f"/{name}: no storage type for {kind!r}")
    if handling == "hash" and sql_type != "varchar":
        raise SchemaCompileError(f"/{name}: only strings can be keyed-hashed")
    if handling not in PII_HANDLINGS:
        raise SchemaCompileError(f"/{name}: unknown x-pii-handling {handling!r}")
    return Column(
        name=name,
        schema_type=kind,
        sql_type=sql_type,
        expr=expr,
        description=spec.get("description", ""),
        pii=spec.get("x-pii", "none"),
        pii_handling=handling,
    )
