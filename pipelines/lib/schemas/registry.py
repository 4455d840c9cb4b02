"""The event schema registry: every published version of every event type, and the current one.

Layout (``schemas/events/``)::

    <type>/<MAJOR.MINOR.PATCH>.json   every published version; never edited once published
    <type>.json                       the current version: a symlink to one of the files above

``load_event_schemas()`` returns the current schema per type (what events are stored as);
``load_schema_versions()`` every published version; ``accepted_versions()`` the versions ingest
stores: those of the current major, which by the rules ``python -m pipelines.schemas check``
enforces only add optional fields or loosen constraints, so their lines fit the current table
(fields they lack are null). An older major is retired, its lines quarantined, unless the current
version lists it in ``x-accepts-majors`` (its lines still fit the current table: ``check`` verifies
it).

A registry without ``<type>/`` folders (one file per type) is a registry of current versions only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from pipelines.lib.lake import paths

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


class SchemaRegistryError(ValueError):
    """The schema files do not form a registry ingest can use."""


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str, where: str = "") -> Version:
        match = _SEMVER.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise SchemaRegistryError(
                f"{where or 'version'}: {text!r} is not a version MAJOR.MINOR.PATCH (e.g. 1.2.0)"
            )
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


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

    @property
    def semver(self) -> Version:
        return Version.parse(self.version, str(self.path))


@dataclass(frozen=True)
class Registry:
    root: Path
    current: dict[str, EventSchema]  # type -> current version, types in alphabetical order
    versions: dict[str, list[EventSchema]]  # type -> every published version, oldest first


def _load(path: Path, event_type: str | None = None) -> EventSchema:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        props = document["properties"]
        found_type = props["event_type"]["const"]
        version = props["schema_version"]["const"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SchemaRegistryError(
            f"{path}: not an event schema with const event_type and schema_version ({exc!r})"
        ) from exc
    expected = event_type or path.stem
    if found_type != expected:
        raise SchemaRegistryError(
            f"{path}: event_type const {found_type!r} does not match its place ({expected!r})"
        )
    schema = EventSchema(found_type, version, document, path)
    Version.parse(version, f"{path}: schema_version const")
    return schema


def _published(folder: Path, event_type: str) -> list[EventSchema]:
    found = []
    for path in sorted(folder.glob("*.json")):
        schema = _load(path, event_type)
        if schema.version != path.name.removesuffix(".json"):
            raise SchemaRegistryError(
                f"{path}: schema_version const {schema.version!r} does not match the file name"
            )
        found.append(schema)
    return sorted(found, key=lambda s: s.semver)


@cache
def load_registry(root: Path) -> Registry:
    """Read and cross-check the registry under ``root`` (cached per folder)."""
    current = {s.event_type: s for s in map(_load, sorted(root.glob("*.json")))}
    if not current:
        raise SchemaRegistryError(f"no event schemas under {root}")
    orphans = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not (root / f"{p.name}.json").exists()
    )
    if orphans:
        raise SchemaRegistryError(
            f"{root}: version folder(s) {orphans} have no current version: link "
            f"<type>.json to the current <type>/<version>.json"
        )
    versions = {}
    for event_type, head in current.items():
        folder = root / event_type
        published = _published(folder, event_type) if folder.is_dir() else []
        numbers = [s.version for s in published]
        if published and head.version not in numbers:
            raise SchemaRegistryError(
                f"{head.path}: current version {head.version} is not published as "
                f"{folder / (head.version + '.json')}"
            )
        if published and head.version != numbers[-1]:
            raise SchemaRegistryError(
                f"{head.path}: the current version must be the latest published one "
                f"({numbers[-1]}), not {head.version}"
            )
        # The current file stands for its version (it is that file, linked).
        versions[event_type] = [s for s in published if s.version != head.version] + [head]
    return Registry(root, current, versions)


def registry(directory: Path | None = None) -> Registry:
    return load_registry((directory or paths.schemas_dir() / "events").resolve())


def load_event_schemas(directory: Path | None = None) -> dict[str, EventSchema]:
    """The current schema of every event type, keyed by event type, in alphabetical order."""
    return registry(directory).current


def load_schema_versions(directory: Path | None = None) -> dict[str, list[EventSchema]]:
    """Every published version of every event type, oldest first."""
    return registry(directory).versions


def accepted_majors(schema: EventSchema) -> frozenset[int]:
    """The majors whose lines ``schema`` (a current version) stores: its own, and the older ones
    it lists in ``x-accepts-majors`` (a new major that only tightens the PII policy still fits
    the lines of the one before, and the policy is enforced on every stored value anyway)."""
    older = schema.document.get("x-accepts-majors", [])
    if not isinstance(older, list) or not all(
        isinstance(m, int) and 0 <= m < schema.semver.major for m in older
    ):
        raise SchemaRegistryError(
            f"{schema.path}: x-accepts-majors must list older major numbers (got {older!r})"
        )
    return frozenset([schema.semver.major, *older])


def accepted_versions(directory: Path | None = None) -> dict[str, list[EventSchema]]:
    """The versions ingest stores, oldest first: those of the current major and of the older
    majors it accepts."""
    reg = registry(directory)
    majors = {t: accepted_majors(reg.current[t]) for t in reg.current}
    return {
        t: [s for s in published if s.semver.major in majors[t]]
        for t, published in reg.versions.items()
    }


def event_types() -> list[str]:
    return list(load_event_schemas())


def kept_field_names() -> frozenset[str]:
    """Every field name an accepted schema declares, at any depth, except those any version hashes:
    the keys whose values a redacted quarantined line may keep (scrubbed). Any other key's value is
    hashed."""
    return _kept_field_names(registry().root)


@cache
def _kept_field_names(root: Path) -> frozenset[str]:
    declared: set[str] = set()
    hashed: set[str] = set()

    def walk(node: Any, names: set[str]) -> None:
        if isinstance(node, dict):
            for name, spec in (node.get("properties") or {}).items():
                if isinstance(spec, dict) and spec.get("x-pii-handling") == "hash":
                    hashed.add(name)
                else:
                    names.add(name)
            for child in node.values():
                walk(child, names)
        elif isinstance(node, list):
            for child in node:
                walk(child, names)

    for published in load_registry(root).versions.values():
        for schema in published:
            walk(schema.document, set())
    for accepted in accepted_versions(root).values():
        for schema in accepted:
            walk(schema.document, declared)
    return frozenset(declared - hashed)
