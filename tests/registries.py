"""Schema registries for tests: a copy of the repository's in tmp_path, with versions published or
withdrawn, that the code under test reads through ``paths.schemas_dir``."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.lib.lake import paths
from pipelines.lib.schemas.changes import ID_PREFIX
from pipelines.lib.schemas.registry import Version

REPO_REGISTRY = paths.PROJECT_ROOT / "schemas" / "events"

Change = Callable[[dict[str, Any]], None]


def as_version(base: dict[str, Any], version: str, change: Change | None = None) -> dict[str, Any]:
    """``base`` published as ``version`` ($id, const and examples follow); ``change`` edits it."""
    doc = copy.deepcopy(base)
    doc["$id"] = f"{ID_PREFIX}{doc['properties']['event_type']['const']}/{version}.json"
    doc["properties"]["schema_version"]["const"] = version
    for example in doc.get("examples", []):
        example["schema_version"] = version
    if change:
        change(doc)
    return doc


def copy_registry(tmp_path: Path) -> Path:
    """The repository's registry copied to ``tmp_path/schemas/events`` (links kept as links)."""
    root = tmp_path / "schemas" / "events"
    shutil.copytree(REPO_REGISTRY, root, symlinks=True)
    return root


def _relink(root: Path, event_type: str) -> None:
    versions = sorted(
        (p.name.removesuffix(".json") for p in (root / event_type).glob("*.json")),
        key=Version.parse,
    )
    link = root / f"{event_type}.json"
    link.unlink()
    link.symlink_to(f"{event_type}/{versions[-1]}.json")


def publish(root: Path, event_type: str, version: str, change: Change | None = None) -> None:
    """Publish ``version`` of ``event_type``: the current document with ``change``, made current."""
    current = json.loads((root / f"{event_type}.json").read_text(encoding="utf-8"))
    doc = as_version(current, version, change)
    (root / event_type / f"{version}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    _relink(root, event_type)


def withdraw(root: Path, event_type: str, version: str) -> None:
    """The registry as it was before ``version`` was published."""
    (root / event_type / f"{version}.json").unlink()
    _relink(root, event_type)


def use_registry(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Point the code at the registry ``root`` (a ``.../schemas/events`` folder)."""
    monkeypatch.setattr(paths, "schemas_dir", lambda: root.parent)
