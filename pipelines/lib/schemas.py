"""Load the event contract (one JSON Schema per event type) from ``schemas/events/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.lib.paths import schemas_dir


@dataclass(frozen=True)
class EventSchema:
    event_type: str
    version: str
    document: dict[str, Any]
    path: Path

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return self.document["properties"]

    @property
    def required(self) -> list[str]:
        return list(self.document.get("required", []))


def _load(path: Path) -> EventSchema:
    document = json.loads(path.read_text(encoding="utf-8"))
    props = document["properties"]
    event_type = props["event_type"]["const"]
    if event_type != path.stem:
        raise ValueError(f"{path}: event_type const {event_type!r} does not match the file name")
    return EventSchema(event_type, props["schema_version"]["const"], document, path)


@cache
def load_event_schemas(directory: Path | None = None) -> dict[str, EventSchema]:
    """Every event schema, keyed by event type, in a stable (alphabetical) order."""
    root = directory or schemas_dir() / "events"
    schemas = {s.event_type: s for s in map(_load, sorted(root.glob("*.json")))}
    if not schemas:
        raise FileNotFoundError(f"no event schemas under {root}")
    return schemas


def event_types() -> list[str]:
    return list(load_event_schemas())


@cache
def kept_field_names() -> frozenset[str]:
    """Every field name the schemas declare, at any depth, except the hashed ones: the keys whose
    values a redacted quarantined line may keep (scrubbed). Any other key's value is hashed."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, spec in (node.get("properties") or {}).items():
                if not (isinstance(spec, dict) and spec.get("x-pii-handling") == "hash"):
                    names.add(name)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for schema in load_event_schemas().values():
        walk(schema.document)
    return frozenset(names)
