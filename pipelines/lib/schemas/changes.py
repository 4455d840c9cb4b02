"""What a new version of an event schema changed, and whether its version number says so.

Versions are SemVer, MAJOR.MINOR.PATCH. Each change between two consecutive published versions of
an event type is one of:

* **revision** (needs at least a patch bump): an annotation changed (``title``, ``description``,
  ``examples``, ``$comment``), or a constraint was loosened: a bound relaxed or dropped, an enum
  member added, a ``const`` / ``enum`` / ``pattern`` / ``x-unique-by`` dropped, a field no
  longer required. Every line valid before is still valid and is stored the same way.
* **addition** (needs at least a minor bump): a new optional top-level field. Lines of the
  previous version are still valid and are stored with the new column null.
* **breaking** (needs a major bump): a field removed or renamed, a type changed, a new required
  field, a constraint tightened (a bound raised or added, an enum member removed, a new or
  changed ``pattern`` or ``const``), a new field inside a nested object (it changes the stored
  struct), a change of ``x-pii`` or ``x-pii-handling`` (what is stored, or who may see it), or
  any change of a keyword this module does not know. Lines of the previous version may now be
  rejected or would not fit the table, so ingest accepts only the current major's versions.

A version's change is its most severe one; publishing a version with no change is a revision.
Over-bumping is allowed (a revision published as a new major).

``check_registry()`` also checks each published file: it compiles to SQL, its ``$id`` names its
type and version, every field declares an ``x-pii`` class, its examples are valid, the current
``<type>.json`` is the latest version's file, and the accepted versions fit the current table.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.lib.schemas.keywords import (
    DESCRIPTIVE,
    LOWER_BOUNDS,
    PII,
    RESTRICTIONS,
    UPPER_BOUNDS,
)
from pipelines.lib.schemas.registry import (
    EventSchema,
    SchemaRegistryError,
    Version,
    accepted_versions,
    registry,
)
from pipelines.lib.schemas.sql_compiler import SchemaCompileError, compile_schema
from pipelines.lib.schemas.stored_shape import check_fits
from pipelines.lib.schemas.validator import explain

REVISION = "revision"
ADDITION = "addition"
BREAKING = "breaking"
_SEVERITY = {REVISION: 0, ADDITION: 1, BREAKING: 2}
# The smallest bump each kind of change needs.
REQUIRED_BUMP = {REVISION: "patch", ADDITION: "minor", BREAKING: "major"}
_BUMPS = ("patch", "minor", "major")

PII_CLASSES = ("none", "low", "high")
ID_PREFIX = "https://telemetry-lake.dev/schemas/events/"

# Every string the current version allows declares one of these (x-pii-handling); an identifier
# is held to a shape by one of _SHAPED.
STRING_POLICIES = ("hash", "scrub", "identifier")
_SHAPED = ("pattern", "enum", "const")


@dataclass(frozen=True)
class Change:
    kind: str  # REVISION, ADDITION or BREAKING
    where: str  # "/items/*/score", "/" for the event itself
    what: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where} {self.what}"


@dataclass(frozen=True)
class Comparison:
    """One published version against the one before it."""

    event_type: str
    old: str
    new: str
    changes: list[Change]

    @property
    def kind(self) -> str:
        return max((c.kind for c in self.changes), key=_SEVERITY.__getitem__, default=REVISION)

    @property
    def bump(self) -> str:
        old, new = Version.parse(self.old), Version.parse(self.new)
        if new.major != old.major:
            return "major"
        return "minor" if new.minor != old.minor else "patch"

    @property
    def problem(self) -> str | None:
        """Why this version number is wrong for the change, or None."""
        if _BUMPS.index(self.bump) >= _BUMPS.index(REQUIRED_BUMP[self.kind]):
            return None
        reasons = "; ".join(str(c) for c in self.changes if c.kind == self.kind)
        return (
            f"{self.event_type} {self.old} -> {self.new}: a {self.kind} change needs a "
            f"{REQUIRED_BUMP[self.kind]} version bump, not a {self.bump} one ({reasons}); "
            f"publish it as {_next(Version.parse(self.old), REQUIRED_BUMP[self.kind])}"
        )


def _next(version: Version, bump: str) -> Version:
    if bump == "major":
        return Version(version.major + 1, 0, 0)
    if bump == "minor":
        return Version(version.major, version.minor + 1, 0)
    return Version(version.major, version.minor, version.patch + 1)


def _types(value: Any) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value or [])


def compare(old: EventSchema, new: EventSchema) -> Comparison:
    """Classify every change from ``old`` to ``new`` (two versions of one event type)."""
    changes = _Differ().node(old.document, new.document, "", top=True)
    return Comparison(old.event_type, old.version, new.version, changes)


class _Differ:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, kind: str, where: str, what: str) -> None:
        self.changes.append(Change(kind, where or "/", what))

    def node(
        self, old: dict[str, Any], new: dict[str, Any], where: str, top: bool = False
    ) -> list[Change]:
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key), new.get(key)
            if before == after or key == "$id":
                continue
            if key in DESCRIPTIVE:
                self.add(REVISION, where, f"{key} changed")
            elif key in PII:
                self.add(BREAKING, where, f"{key} {before!r} -> {after!r} changes what is stored")
            elif key == "x-accepts-majors" and top:
                self.accepted_majors(before or [], after or [], where)
            elif key in LOWER_BOUNDS or key in UPPER_BOUNDS:
                self.bound(key, before, after, where)
            elif key in RESTRICTIONS:
                loosened = after is None
                what = "dropped" if loosened else f"{before!r} -> {after!r}"
                self.add(REVISION if loosened else BREAKING, where, f"{key} {what}")
            elif key == "enum":
                self.enum(before, after, where)
            elif key == "type":
                if _types(before) != _types(after):
                    self.add(BREAKING, where, f"type {before!r} -> {after!r}")
            elif key == "required":
                self.required(before or [], after or [], where)
            elif key == "properties":
                self.properties(before or {}, after or {}, new, where, top)
            elif key == "dependentRequired":
                self.dependent(before or {}, after or {}, old, where)
            elif key in ("items", "additionalProperties"):
                self.subschema(key, before, after, where)
            else:
                self.add(BREAKING, where, f"{key} changed (not a change this check can classify)")
        return self.changes

    def accepted_majors(self, before: list[int], after: list[int], where: str) -> None:
        # Accepting one more older major stores more lines of the same shape; accepting fewer
        # quarantines lines that were stored before.
        if set(before) - set(after):
            self.add(
                BREAKING,
                where,
                f"x-accepts-majors no longer lists {sorted(set(before) - set(after))}",
            )
        else:
            self.add(
                REVISION, where, f"x-accepts-majors now lists {sorted(set(after) - set(before))}"
            )

    def bound(self, key: str, before: Any, after: Any, where: str) -> None:
        if after is None:
            self.add(REVISION, where, f"{key} {before} dropped")
            return
        if before is None:
            self.add(BREAKING, where, f"{key} {after} added")
            return
        tighter = after > before if key in LOWER_BOUNDS else after < before
        self.add(BREAKING if tighter else REVISION, where, f"{key} {before} -> {after}")

    def enum(self, before: list | None, after: list | None, where: str) -> None:
        if after is None:
            self.add(REVISION, where, "enum dropped")
        elif before is None:
            self.add(BREAKING, where, f"enum {after!r} added")
        elif set(before) - set(after):
            self.add(BREAKING, where, f"enum loses {sorted(set(before) - set(after))!r}")
        else:
            self.add(REVISION, where, f"enum gains {sorted(set(after) - set(before))!r}")

    def required(self, before: list[str], after: list[str], where: str) -> None:
        for name in sorted(set(after) - set(before)):
            self.add(BREAKING, f"{where}/{name}", "is now required")
        for name in sorted(set(before) - set(after)):
            self.add(REVISION, f"{where}/{name}", "is no longer required")

    def properties(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        new: dict[str, Any],
        where: str,
        top: bool,
    ) -> None:
        for name in sorted(set(before) - set(after)):
            self.add(BREAKING, f"{where}/{name}", "removed (or renamed)")
        required = set(new.get("required", []))
        for name in sorted(set(after) - set(before)):
            # A new required field is reported by `required`.
            if name in required:
                continue
            if top:
                self.add(ADDITION, f"{where}/{name}", "new optional field")
            else:
                self.add(BREAKING, f"{where}/{name}", "new nested field changes the stored struct")
        for name in sorted(set(before) & set(after)):
            if name == "schema_version" and top:
                # Its const is the version itself; anything else about it is compared.
                old_spec = {k: v for k, v in before[name].items() if k != "const"}
                new_spec = {k: v for k, v in after[name].items() if k != "const"}
                self.node(old_spec, new_spec, f"{where}/{name}")
            else:
                self.node(before[name], after[name], f"{where}/{name}")

    def dependent(
        self,
        before: dict[str, list[str]],
        after: dict[str, list[str]],
        old: dict[str, Any],
        where: str,
    ) -> None:
        existing = set(old.get("properties", {}))
        for name in sorted(set(before) | set(after)):
            gained = set(after.get(name, [])) - set(before.get(name, []))
            lost = set(before.get(name, [])) - set(after.get(name, []))
            if gained:
                # Only a field the previous version knew can have lines it now rejects.
                kind = BREAKING if name in existing else ADDITION
                self.add(kind, f"{where}/{name}", f"now requires {sorted(gained)}")
            if lost:
                self.add(REVISION, f"{where}/{name}", f"no longer requires {sorted(lost)}")

    def subschema(self, key: str, before: Any, after: Any, where: str) -> None:
        here = f"{where}/*"
        if isinstance(before, dict) and isinstance(after, dict):
            self.node(before, after, here)
        elif after is None or after is True:
            self.add(REVISION, here, f"{key} no longer restricted")
        else:
            self.add(BREAKING, here, f"{key} {before!r} -> {after!r}")


# --- the registry as a whole -------------------------------------------------------------------


@dataclass
class RegistryReport:
    root: Path
    comparisons: list[Comparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def _walk_properties(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        for name, spec in (node.get("properties") or {}).items():
            found.append((f"{where}/{name}", spec))
            found += _walk_properties(spec, f"{where}/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _walk_properties(node[key], f"{where}/*")
    return found


def _file_problems(schema: EventSchema) -> list[str]:
    where = f"{schema.event_type} {schema.version} ({schema.path})"
    problems = []
    expected_id = f"{ID_PREFIX}{schema.event_type}/{schema.version}.json"
    if schema.document.get("$id") != expected_id:
        problems.append(f"{where}: $id must be {expected_id}")
    try:
        compile_schema(schema)
    except (ValueError, KeyError, TypeError) as exc:  # SchemaCompileError is a ValueError
        problems.append(f"{where}: does not compile to SQL: {exc}")
    for pointer, spec in _walk_properties(schema.document):
        if spec.get("x-pii") not in PII_CLASSES:
            problems.append(f"{where}: {pointer} must declare x-pii, one of {PII_CLASSES}")
    return problems + _example_problems(schema, where)


def _policy_problems(schema: EventSchema) -> list[str]:
    """Every string the (current) version allows must say how its values are protected: hashed,
    scrubbed, or an identifier held to a pattern, an enum or a const."""
    where = f"{schema.event_type} {schema.version} ({schema.path})"
    problems = []
    for pointer, spec in _walk_properties(schema.document):
        if "string" not in _types(spec.get("type")):
            continue
        policy = spec.get("x-pii-handling")
        if policy not in STRING_POLICIES:
            problems.append(
                f"{where}: {pointer} is a string: declare x-pii-handling, one of {STRING_POLICIES}"
            )
        elif policy == "identifier" and not any(k in spec for k in _SHAPED):
            problems.append(
                f"{where}: {pointer} is an identifier: give it a pattern, an enum or a const"
            )
    return problems


def _example_problems(schema: EventSchema, where: str) -> list[str]:
    problems = []
    for n, example in enumerate(schema.document.get("examples", []), start=1):
        errors = explain(schema.document, example)
        if errors:
            problems.append(f"{where}: example {n} is not valid: {errors}")
    return problems


def _marker_problem(current: EventSchema, published: list[EventSchema]) -> str | None:
    """The current ``<type>.json`` must be the latest published file (a link to it, or a copy)."""
    source = current.path.parent / current.event_type / f"{current.version}.json"
    if not source.exists():
        return None  # a registry of current versions only
    if json.loads(source.read_text(encoding="utf-8")) != current.document:
        return f"{current.path} differs from {source}: a published version is never edited"
    if published[-1].version != current.version:
        return f"{current.path} must be the latest version {published[-1].version}"
    return None


def check_registry(directory: Path | None = None) -> RegistryReport:
    """Every rule above, over the whole registry (the repository's by default)."""
    try:
        reg = registry(directory)
    except SchemaRegistryError as exc:
        return RegistryReport(directory or Path("schemas/events"), problems=[str(exc)])
    report = RegistryReport(reg.root)
    for event_type, published in reg.versions.items():
        for schema in published:
            report.problems += _file_problems(schema)
        report.problems += _policy_problems(reg.current[event_type])
        marker = _marker_problem(reg.current[event_type], published)
        if marker:
            report.problems.append(marker)
        for old, new in itertools.pairwise(published):
            comparison = compare(old, new)
            report.comparisons.append(comparison)
            if comparison.problem:
                report.problems.append(comparison.problem)
    if report.passed:
        current = {t: compile_schema(s) for t, s in reg.current.items()}
        for event_type, accepted in accepted_versions(reg.root).items():
            for schema in accepted:
                try:
                    check_fits(compile_schema(schema), current[event_type])
                except SchemaCompileError as exc:
                    report.problems.append(str(exc))
    return report
