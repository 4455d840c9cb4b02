"""Request files stay in their inbox: an erasure's ``request_file`` must be a file directly in
``requests/erasure/``, an export's directly in ``requests/export/``. A path climbing out with
``..``, an absolute path, a symbolic link (wherever it points) or a folder that resolves elsewhere
is refused with the allowed folder named, before anything is read, processed or deleted."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from pipelines.defs.privacy.erasure import erase_users, erasure_requests_sensor
from pipelines.defs.privacy.export import export_user_job
from pipelines.defs.resources import LakeResource
from pipelines.lib.lake.storage import Lake, OutsideFolderError
from pipelines.lib.privacy.requests import (
    EXPORT_REQUESTS_DIR,
    REQUESTS_DIR,
    ErasureRequestError,
    ExportRequestError,
    load_export_request,
    load_request,
)
from tests.conftest import privacy_resources

VICTIM = json.dumps({"request_id": "victim", "user_ids": ["u-victim"], "user_id": "u-victim"})


@pytest.fixture
def lake_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A lake with both inboxes, and outside it a file that reads as a valid request of either
    kind (what the old code read, processed and deleted)."""
    root = tmp_path / "lake"
    (root / REQUESTS_DIR).mkdir(parents=True)
    (root / EXPORT_REQUESTS_DIR).mkdir(parents=True)
    victim = tmp_path / "outside" / "victim.json"
    victim.parent.mkdir()
    victim.write_text(VICTIM)
    return root, victim


def _resources(root: Path) -> dict:
    return privacy_resources(str(root), memory_limit="512MB")


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_failure)


def _erase(root: Path, request_file: str) -> dg.ExecuteInProcessResult:
    return erase_users.execute_in_process(
        run_config={"ops": {"erase": {"config": {"request_file": request_file}}}},
        resources=_resources(root),
        raise_on_error=False,
    )


def _export(root: Path, request_file: str) -> dg.ExecuteInProcessResult:
    return export_user_job.execute_in_process(
        run_config={"ops": {"export": {"config": {"request_file": request_file}}}},
        resources=_resources(root),
        raise_on_error=False,
    )


def _cases(root: Path, victim: Path, folder: str) -> list[tuple[str, str]]:
    """(request_file, the reason in the error) for each way out of ``folder``."""
    inbox = root / folder
    (inbox / "link.json").symlink_to(victim)  # points outside
    (inbox / "mine.json").write_text(VICTIM)
    (inbox / "alias.json").symlink_to("mine.json")  # points inside: refused all the same
    return [
        ("../outside/victim.json", "climbs out with '..'"),
        (f"{folder}/../../../outside/victim.json", "climbs out with '..'"),
        (str(victim), "is an absolute path"),
        ("/etc/passwd", "is an absolute path"),
        (f"file://{victim}", "is an absolute path"),
        (f"{folder}/link.json", "is a symbolic link"),
        (f"{folder}/alias.json", "is a symbolic link"),
        ("outside.json", f"is not directly in {folder}/"),
        (f"{folder}/processed/x.json", f"is not directly in {folder}/"),
    ]


def _allowed(folder: str) -> str:
    return (
        f": name a file directly in {folder}/ of the lake (e.g. {folder}/request.json); "
        "nothing was read or deleted"
    )


def _refuses_every_outside_case(
    root: Path,
    victim: Path,
    folder: str,
    run: Callable[[Path, str], dg.ExecuteInProcessResult],
) -> None:
    """Each request file outside ``folder`` fails its run with the reason and the allowed folder
    named, the victim unchanged; the links stay links, their targets unread."""
    for request_file, reason in _cases(root, victim, folder):
        result = run(root, request_file)
        assert not result.success, request_file
        assert f"request_file {request_file!r} {reason}{_allowed(folder)}" in (
            _failure_text(result)
        )
        assert victim.read_text() == VICTIM  # still there, unchanged
    # The links are links still (not replaced by a redacted copy), their targets unread.
    assert (root / folder / "link.json").is_symlink()
    assert (root / folder / "mine.json").read_text() == VICTIM


def test_an_erasure_request_outside_its_inbox_is_refused_and_nothing_is_touched(lake_dirs):
    root, victim = lake_dirs
    _refuses_every_outside_case(root, victim, REQUESTS_DIR, _erase)
    assert (root / REQUESTS_DIR / "alias.json").is_symlink()
    assert not (root / REQUESTS_DIR / "processed").exists()
    assert not (root / "ops").exists()  # no audit: nothing was processed


def test_an_export_request_outside_its_inbox_is_refused_and_nothing_is_touched(lake_dirs):
    root, victim = lake_dirs
    _refuses_every_outside_case(root, victim, EXPORT_REQUESTS_DIR, _export)
    assert not (root / "exports").exists()


def _inbox_elsewhere(tmp_path: Path) -> tuple[Path, Path]:
    """A lake whose erasure inbox is a link to a folder outside it holding a valid r.json: the
    lake's root and that folder."""
    root = tmp_path / "lake"
    (root / "requests").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "r.json").write_text(VICTIM)
    (root / REQUESTS_DIR).symlink_to(elsewhere)
    return root, elsewhere


def test_an_inbox_folder_that_resolves_elsewhere_is_refused(tmp_path):
    root, elsewhere = _inbox_elsewhere(tmp_path)
    with pytest.raises(ErasureRequestError) as caught:
        load_request(Lake(str(root)), f"{REQUESTS_DIR}/r.json")
    assert str(caught.value) == (
        f"request_file '{REQUESTS_DIR}/r.json' resolves outside {REQUESTS_DIR}/"
        + _allowed(REQUESTS_DIR)
    )
    assert (elsewhere / "r.json").read_text() == VICTIM


def test_a_request_in_its_inbox_is_read_under_its_normalised_name(lake_dirs):
    root, _ = lake_dirs
    (root / REQUESTS_DIR / "r-1.json").write_text(VICTIM.replace(', "user_id": "u-victim"', ""))
    lake = Lake(str(root))
    request = load_request(lake, f"./{REQUESTS_DIR}//r-1.json")
    assert request.source == f"{REQUESTS_DIR}/r-1.json"
    assert request.user_ids == ("u-victim",)
    (root / EXPORT_REQUESTS_DIR / "t-1.json").write_text(json.dumps({"user_id": "u-victim"}))
    assert load_export_request(lake, f"{EXPORT_REQUESTS_DIR}/t-1.json") == (
        f"{EXPORT_REQUESTS_DIR}/t-1.json",
        "u-victim",
    )
    (root / EXPORT_REQUESTS_DIR / "t-2.json").write_text("[1, 2]")
    with pytest.raises(ExportRequestError, match=r'expected \{"user_id": "..."\}'):
        load_export_request(lake, f"{EXPORT_REQUESTS_DIR}/t-2.json")


def test_the_sensor_neither_reads_nor_starts_a_linked_request(lake_dirs):
    root, victim = lake_dirs
    (root / REQUESTS_DIR / "link.json").symlink_to(victim)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"lake": LakeResource(root=str(root))}
        )
        assert erasure_requests_sensor(context).run_requests == []
    assert victim.read_text() == VICTIM and (root / REQUESTS_DIR / "link.json").is_symlink()


def test_the_sensor_does_not_read_an_inbox_that_resolves_elsewhere_and_the_run_says_why(tmp_path):
    root, elsewhere = _inbox_elsewhere(tmp_path)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"lake": LakeResource(root=str(root))}
        )
        [request] = erasure_requests_sensor(context).run_requests
        assert request.run_key == f"erasure:{REQUESTS_DIR}/r.json:refused"
        result = erase_users.execute_in_process(
            run_config=request.run_config,
            resources=_resources(root),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    assert f"resolves outside {REQUESTS_DIR}/" in _failure_text(result)
    assert (elsewhere / "r.json").read_text() == VICTIM


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("../requests/erasure/r.json", "climbs out with '..'"),
        ("requests/erasure/../export/r.json", "climbs out with '..'"),
        ("/requests/erasure/r.json", "is an absolute path"),
        ("s3://other-bucket/requests/erasure/r.json", "is an absolute path"),
        ("requests/erasure", "is not directly in requests/erasure/"),
        ("", "is empty"),
    ],
)
def test_off_a_local_disk_the_same_paths_are_refused(rel: str, reason: str):
    # memory:// stands in for S3: not local, so no links to look at, only the path itself.
    lake = Lake("memory://bucket/lake")
    assert not lake.is_local
    with pytest.raises(OutsideFolderError) as caught:
        lake.file_in(REQUESTS_DIR, rel)
    assert str(caught.value) == f"{rel!r} {reason}{_allowed(REQUESTS_DIR)}"
    assert lake.file_in(REQUESTS_DIR, "requests/erasure/r.json") == "requests/erasure/r.json"


def test_nothing_outside_the_inbox_was_deleted_by_a_refused_run(lake_dirs):
    root, victim = lake_dirs
    before = sorted(str(p.relative_to(root.parent)) for p in root.parent.rglob("*"))
    for request_file in ("../outside/victim.json", str(victim)):
        assert not _erase(root, request_file).success
        assert not _export(root, request_file).success
    after = sorted(str(p.relative_to(root.parent)) for p in root.parent.rglob("*"))
    assert [p for p in before if p not in after] == []
    assert os.path.getsize(victim) == len(VICTIM)
