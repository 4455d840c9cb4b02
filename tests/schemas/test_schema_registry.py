"""The schema registry: loading every published version, classifying each change against the
previous version, and `python -m pipelines.schemas check` on the repository's registry and on
crafted ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.lib.lake.paths import PROJECT_ROOT
from pipelines.lib.schemas.changes import ADDITION, BREAKING, REVISION, check_registry, compare
from pipelines.lib.schemas.registry import (
    EventSchema,
    SchemaRegistryError,
    accepted_versions,
    load_event_schemas,
    load_registry,
    load_schema_versions,
)
from tests.registries import REPO_REGISTRY, Change, as_version

RANKING_1_0_0 = json.loads((REPO_REGISTRY / "ranking" / "1.0.0.json").read_text(encoding="utf-8"))


def _with_policy(published: dict[str, Any]) -> dict[str, Any]:
    """``published`` with the PII policy 2.0.0 gives its strings, so a registry whose current
    version it is passes the policy check (every string declares ``x-pii-handling``)."""
    policy = json.loads((REPO_REGISTRY / "ranking" / "2.0.0.json").read_text(encoding="utf-8"))
    doc = json.loads(json.dumps(published))

    def copy(into: dict[str, Any], source: dict[str, Any]) -> None:
        for name, spec in into.get("properties", {}).items():
            for key in ("x-pii-handling", "pattern", "x-bare-digits"):
                if key in source["properties"][name]:
                    spec.setdefault(key, source["properties"][name][key])
            if isinstance(spec.get("items"), dict):
                copy(spec["items"], source["properties"][name]["items"])

    copy(doc, policy)
    return doc


# Registries built in tmp_path start from this: ranking 1.0.0's fields, under today's policy.
RANKING_BASE = _with_policy(RANKING_1_0_0)


def _write_registry(root: Path, versions: dict[str, list[dict[str, Any]]]) -> Path:
    """A registry folder: every document as <type>/<version>.json, <type>.json linked to the
    last one."""
    root.mkdir(parents=True, exist_ok=True)
    for event_type, docs in versions.items():
        folder = root / event_type
        folder.mkdir()
        for doc in docs:
            version = doc["properties"]["schema_version"]["const"]
            (folder / f"{version}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
        (root / f"{event_type}.json").symlink_to(f"{event_type}/{version}.json")
    return root


def _schema(doc: dict[str, Any]) -> EventSchema:
    version = doc["properties"]["schema_version"]["const"]
    return EventSchema("ranking", version, doc, Path(f"ranking/{version}.json"))


def _kind(change: Change, version: str = "1.0.1") -> str:
    return compare(_schema(RANKING_BASE), _schema(as_version(RANKING_BASE, version, change))).kind


def _run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.schemas", "check", "--schemas-dir", str(root)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_optional(doc: dict[str, Any]) -> None:
    doc["properties"]["rerank_ms"] = {
        "description": "Time spent re-ranking, milliseconds.",
        "type": "number",
        "minimum": 0,
        "x-pii": "none",
    }


def _remove_alpha(doc: dict[str, Any]) -> None:
    del doc["properties"]["alpha"]
    doc["required"].remove("alpha")
    for example in doc["examples"]:
        del example["alpha"]


# --- the repository's registry -------------------------------------------------------------------


def test_the_repository_registry_passes_the_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.schemas", "check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ranking 1.0.0 -> 1.1.0: addition (needs a minor bump, has a minor one)" in result.stdout
    assert "addition: /model_version new optional field" in result.stdout
    assert "error 1.0.0 -> 1.1.0: addition" in result.stdout


def test_the_repository_publishes_2_0_0_and_still_accepts_1_x() -> None:
    versions = {t: [s.version for s in found] for t, found in load_schema_versions().items()}
    assert versions == {
        "click": ["1.0.0", "2.0.0"],
        "error": ["1.0.0", "1.1.0", "2.0.0"],
        "impression": ["1.0.0", "2.0.0"],
        "ranking": ["1.0.0", "1.1.0", "2.0.0"],
        "request": ["1.0.0", "2.0.0"],
    }
    current = load_event_schemas()
    assert {t: s.version for t, s in current.items()} == dict.fromkeys(versions, "2.0.0")
    # 2.0.0 only declares the PII policy of every string: older producers' lines stay readable.
    assert {t: [s.version for s in found] for t, found in accepted_versions().items()} == versions
    # The current file is a link to the latest published one.
    assert (REPO_REGISTRY / "ranking.json").resolve() == REPO_REGISTRY / "ranking" / "2.0.0.json"
    ranking, error = current["ranking"], current["error"]
    assert set(ranking.properties) - set(RANKING_BASE["properties"]) == {
        "model_version",
        "candidate_count",
    }
    assert {"model_version", "candidate_count"}.isdisjoint(ranking.required)
    assert "stack_fingerprint" not in error.required
    # New fields are not PII, and a fingerprint cannot carry free text.
    new_fields = [ranking.properties["model_version"], ranking.properties["candidate_count"]]
    new_fields.append(error.properties["stack_fingerprint"])
    assert [spec["x-pii"] for spec in new_fields] == ["none", "none", "none"]
    assert error.properties["stack_fingerprint"]["pattern"] == "^[0-9a-f]{16,64}$"
    assert ranking.properties["candidate_count"]["minimum"] == 0


# --- classification ------------------------------------------------------------------------------


def _set(path: list[str], key: str, value: Any) -> Change:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for step in path:
            node = node[step]
        if value is None:
            del node[key]
        else:
            node[key] = value

    return change


ALPHA = ["properties", "alpha"]
ALGORITHM = ["properties", "algorithm"]
SCORE = ["properties", "items", "items", "properties", "score"]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        pytest.param(_set(ALPHA, "description", "Blend."), REVISION, id="description"),
        pytest.param(_set([], "title", "Ranking"), REVISION, id="title"),
        pytest.param(_set(ALGORITHM, "maxLength", 256), REVISION, id="maxLength-raised"),
        pytest.param(_set(ALGORITHM, "maxLength", 64), BREAKING, id="maxLength-lowered"),
        pytest.param(_set(ALPHA, "minimum", None), REVISION, id="minimum-dropped"),
        pytest.param(_set(ALPHA, "minimum", 0), BREAKING, id="minimum-raised"),
        pytest.param(_set(SCORE, "maximum", 10), BREAKING, id="nested-maximum-lowered"),
        pytest.param(_set(ALGORITHM, "pattern", "^[a-z]+$"), BREAKING, id="pattern-added"),
        pytest.param(_set(ALGORITHM, "enum", ["a", "b"]), BREAKING, id="enum-added"),
        pytest.param(_set(ALPHA, "type", "integer"), BREAKING, id="type-changed"),
        pytest.param(_set(ALPHA, "x-pii", "low"), BREAKING, id="pii-class-changed"),
        pytest.param(_set(ALPHA, "x-pii-handling", "scrub"), BREAKING, id="pii-handling-added"),
        pytest.param(_set(ALPHA, "x-frobnicate", True), BREAKING, id="unknown-keyword"),
        pytest.param(_remove_alpha, BREAKING, id="field-removed"),
        pytest.param(_add_optional, ADDITION, id="optional-field-added"),
        pytest.param(
            lambda d: (_add_optional(d), d["required"].append("rerank_ms")),
            BREAKING,
            id="required-field-added",
        ),
        pytest.param(
            lambda d: d["required"].remove("bucket"), REVISION, id="field-no-longer-required"
        ),
        pytest.param(
            _set(
                ["properties", "items", "items", "properties"],
                "rank_reason",
                {"type": "string", "x-pii": "none"},
            ),
            BREAKING,
            id="nested-field-added",
        ),
        pytest.param(
            lambda d: (
                _add_optional(d),
                d.setdefault("dependentRequired", {}).update(rerank_ms=["alpha"]),
            ),
            ADDITION,
            id="new-field-requires-an-old-one",
        ),
        pytest.param(
            _set([], "dependentRequired", {"alpha": ["coverage"]}),
            BREAKING,
            id="old-field-requires-another",
        ),
        pytest.param(None, REVISION, id="nothing-but-the-version"),
    ],
)
def test_each_change_is_classified(change: Change | None, kind: str) -> None:
    assert _kind(change) == kind


def test_enum_members_gained_loosen_and_lost_tighten() -> None:
    base = as_version(RANKING_BASE, "1.0.0", _set(ALGORITHM, "enum", ["a", "b"]))
    gained = as_version(base, "1.0.1", _set(ALGORITHM, "enum", ["a", "b", "c"]))
    lost = as_version(base, "1.0.1", _set(ALGORITHM, "enum", ["a"]))
    assert compare(_schema(base), _schema(gained)).kind == REVISION
    assert compare(_schema(base), _schema(lost)).kind == BREAKING


def test_a_comparison_names_what_changed_and_the_bump_it_needs() -> None:
    comparison = compare(
        _schema(RANKING_BASE), _schema(as_version(RANKING_BASE, "1.0.1", _remove_alpha))
    )
    assert comparison.bump == "patch"
    assert [str(c) for c in comparison.changes if c.kind == BREAKING] == [
        "breaking: /alpha removed (or renamed)"
    ]
    assert "needs a major version bump, not a patch one" in comparison.problem
    assert "publish it as 2.0.0" in comparison.problem


# --- the check on crafted registries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "change", "passes", "message"),
    [
        pytest.param(
            "1.1.0", _remove_alpha, False, "needs a major version bump", id="breaking-minor"
        ),
        pytest.param("1.0.1", _remove_alpha, False, "publish it as 2.0.0", id="breaking-patch"),
        pytest.param("2.0.0", _remove_alpha, True, "", id="breaking-major"),
        pytest.param("1.1.0", _add_optional, True, "", id="addition-minor"),
        pytest.param("2.0.0", _add_optional, True, "", id="addition-major"),
        pytest.param(
            "1.0.1", _add_optional, False, "needs a minor version bump", id="addition-patch"
        ),
        pytest.param("1.0.1", _set(ALPHA, "maximum", 10**7), True, "", id="revision-patch"),
    ],
)
def test_the_check_wants_a_bump_as_large_as_the_change(
    tmp_path: Path, version: str, change: Change, passes: bool, message: str
) -> None:
    root = _write_registry(
        tmp_path / "events",
        {"ranking": [RANKING_BASE, as_version(RANKING_BASE, version, change)]},
    )
    result = _run_check(root)
    assert (result.returncode == 0) == passes, result.stdout + result.stderr
    assert message in result.stderr
    assert f"ranking 1.0.0 -> {version}" in result.stdout


def test_an_edited_published_version_fails_the_check(tmp_path: Path) -> None:
    root = _write_registry(tmp_path / "events", {"ranking": [RANKING_BASE]})
    # The current file is a copy, and no longer the published one.
    (root / "ranking.json").unlink()
    edited = as_version(RANKING_BASE, "1.0.0", _set(ALPHA, "maximum", 5))
    (root / "ranking.json").write_text(json.dumps(edited), encoding="utf-8")
    report = check_registry(root)
    assert not report.passed
    assert any("a published version is never edited" in p for p in report.problems)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda d: (_add_optional(d), d["properties"]["rerank_ms"].pop("x-pii")),
            "/rerank_ms must declare x-pii",
            id="no-pii-class",
        ),
        pytest.param(
            _set([], "$id", "https://example.com/ranking.json"), "$id must be", id="wrong-id"
        ),
        pytest.param(
            lambda d: d["examples"][0].update(alpha="high"), "example 1 is not valid", id="example"
        ),
        pytest.param(
            _set(ALPHA, "format", "float"), "does not compile to SQL", id="unsupported-keyword"
        ),
    ],
)
def test_each_published_file_is_checked(tmp_path: Path, change: Change, message: str) -> None:
    root = _write_registry(
        tmp_path / "events", {"ranking": [as_version(RANKING_BASE, "1.0.0", change)]}
    )
    report = check_registry(root)
    assert any(message in p for p in report.problems), report.problems


# --- loading -------------------------------------------------------------------------------------


def test_the_current_version_must_be_the_latest(tmp_path: Path) -> None:
    root = _write_registry(
        tmp_path / "events", {"ranking": [RANKING_BASE, as_version(RANKING_BASE, "1.1.0")]}
    )
    (root / "ranking.json").unlink()
    (root / "ranking.json").symlink_to("ranking/1.0.0.json")
    with pytest.raises(SchemaRegistryError, match=r"must be the latest published one \(1\.1\.0\)"):
        load_registry(root)
    result = _run_check(root)
    assert result.returncode == 1
    assert "must be the latest published one" in result.stderr


def test_a_file_named_for_another_version_is_refused(tmp_path: Path) -> None:
    root = _write_registry(tmp_path / "events", {"ranking": [RANKING_BASE]})
    (root / "ranking" / "1.0.0.json").rename(root / "ranking" / "1.0.5.json")
    (root / "ranking.json").unlink()
    (root / "ranking.json").symlink_to("ranking/1.0.5.json")
    with pytest.raises(SchemaRegistryError, match="does not match the file name"):
        load_registry(root)


def test_versions_of_an_older_major_are_not_accepted(tmp_path: Path) -> None:
    root = _write_registry(
        tmp_path / "events",
        {
            "ranking": [
                RANKING_BASE,
                as_version(RANKING_BASE, "1.1.0", _add_optional),
                as_version(RANKING_BASE, "2.0.0", _remove_alpha),
            ]
        },
    )
    assert check_registry(root).passed
    assert [s.version for s in load_schema_versions(root)["ranking"]] == ["1.0.0", "1.1.0", "2.0.0"]
    assert [s.version for s in accepted_versions(root)["ranking"]] == ["2.0.0"]


def test_versions_sort_as_numbers_not_text(tmp_path: Path) -> None:
    versions = ["1.0.0", "1.2.0", "1.10.0"]
    root = _write_registry(
        tmp_path / "events", {"ranking": [as_version(RANKING_BASE, v) for v in versions]}
    )
    assert [s.version for s in load_schema_versions(root)["ranking"]] == versions
    assert load_event_schemas(root)["ranking"].version == "1.10.0"


def test_a_registry_without_version_folders_is_the_current_versions_only(tmp_path: Path) -> None:
    root = tmp_path / "events"
    root.mkdir()
    (root / "ranking.json").write_text(json.dumps(RANKING_BASE), encoding="utf-8")
    assert [s.version for s in load_schema_versions(root)["ranking"]] == ["1.0.0"]
    assert check_registry(root).passed


# --- the PII policy of every string ---------------------------------------------------------------

CANONICAL_ID = ["properties", "items", "items", "properties", "canonical_id"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            _set(ALGORITHM, "x-pii-handling", None),
            "/algorithm is a string: declare x-pii-handling",
            id="no-policy",
        ),
        pytest.param(
            _set(CANONICAL_ID, "x-pii-handling", None),
            "/items/*/canonical_id is a string: declare x-pii-handling",
            id="nested-no-policy",
        ),
        pytest.param(
            _set(ALGORITHM, "pattern", None),
            "/algorithm is an identifier: give it a pattern, an enum or a const",
            id="identifier-without-shape",
        ),
    ],
)
def test_every_string_of_the_current_version_declares_its_policy(
    tmp_path: Path, change: Change, message: str
) -> None:
    root = _write_registry(
        tmp_path / "events", {"ranking": [as_version(RANKING_BASE, "1.0.0", change)]}
    )
    report = check_registry(root)
    assert [p for p in report.problems if message in p], report.problems


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        pytest.param(_set(ALGORITHM, "x-pii-handling", "scrub"), BREAKING, id="policy"),
        pytest.param(_set(CANONICAL_ID, "x-bare-digits", "rejected"), BREAKING, id="bare-digits"),
        pytest.param(_set(ALGORITHM, "pattern", "^[a-z]+$"), BREAKING, id="identifier-pattern"),
    ],
)
def test_a_policy_change_is_breaking(change: Change, kind: str) -> None:
    assert _kind(change, "2.0.0") == kind


def test_a_new_major_may_keep_accepting_the_lines_of_the_one_before(tmp_path: Path) -> None:
    def accept_1(doc: dict[str, Any]) -> None:
        _set(ALGORITHM, "pattern", "^[a-z][a-z0-9-]*$")(doc)
        doc["x-accepts-majors"] = [1]

    root = _write_registry(
        tmp_path / "events",
        {"ranking": [RANKING_BASE, as_version(RANKING_BASE, "2.0.0", accept_1)]},
    )
    report = check_registry(root)
    assert report.passed, report.problems
    assert [s.version for s in accepted_versions(root)["ranking"]] == ["1.0.0", "2.0.0"]
    # Accepting fewer majors again quarantines lines that were stored: breaking.
    dropped = as_version(RANKING_BASE, "2.1.0", _set(ALGORITHM, "pattern", "^[a-z][a-z0-9-]*$"))
    comparison = compare(_schema(as_version(RANKING_BASE, "2.0.0", accept_1)), _schema(dropped))
    assert comparison.kind == BREAKING
    assert "x-accepts-majors no longer lists [1]" in str(comparison.changes)


def test_accepting_a_major_that_does_not_fit_the_table_is_refused(tmp_path: Path) -> None:
    def accept_1(doc: dict[str, Any]) -> None:
        _remove_alpha(doc)
        doc["x-accepts-majors"] = [1]

    root = _write_registry(
        tmp_path / "events",
        {"ranking": [RANKING_BASE, as_version(RANKING_BASE, "2.0.0", accept_1)]},
    )
    report = check_registry(root)
    assert any("ranking 1.0.0: field alpha" in p for p in report.problems), report.problems
