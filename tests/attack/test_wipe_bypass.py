"""Refuse-to-wipe bypasses (issue 20 attack findings). A day is published from a landing file;
then the landing file changes in a way an operator does by accident (a landing folder moved to
another disk and symlinked back, a file cut to nothing by a failed re-upload). Re-ingesting the
day must not replace its stored events with fewer rows while reporting success: it must refuse
(as it does for a deleted file) or keep every row."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from pipelines.lib.ingest.ledger import audit_ledger
from tests.conftest import DAY, LakeHelper, event, line

N = 20


def _published(lake: LakeHelper) -> int:
    lake.land(DAY, "a.jsonl", [line(event("click")) for _ in range(N)])
    lake.ingest()
    assert len(lake.events("click")) == N
    return N


def _outcome(lake: LakeHelper) -> None:
    """Either refused (the stored day unchanged) or every row kept."""
    with contextlib.suppress(Exception):  # refused: what matters is that nothing was lost
        lake.ingest()
    assert len(lake.events("click")) == N, (
        f"re-ingest kept {len(lake.events('click'))} of {N} click rows; "
        f"ledger check passed={audit_ledger(lake.lake, DAY).passed}"
    )


def test_landing_folder_moved_and_symlinked_back(lake: LakeHelper, tmp_path) -> None:
    _published(lake)
    folder = lake.root / "landing" / f"dt={DAY.isoformat()}"
    moved = tmp_path / "bigdisk" / folder.name
    moved.parent.mkdir()
    shutil.move(str(folder), str(moved))
    os.symlink(moved, folder)
    _outcome(lake)


def test_landing_file_replaced_by_symlink_to_its_moved_copy(lake: LakeHelper, tmp_path) -> None:
    _published(lake)
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "a.jsonl"
    moved = tmp_path / "archive.jsonl"
    shutil.move(str(path), str(moved))
    os.symlink(moved, path)
    _outcome(lake)


@pytest.mark.parametrize("keep_lines", [0, 5])
def test_landing_file_truncated(lake: LakeHelper, keep_lines: int) -> None:
    _published(lake)
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "a.jsonl"
    kept = path.read_bytes().splitlines(keepends=True)[:keep_lines]
    path.write_bytes(b"".join(kept))
    _outcome(lake)


def test_landing_file_replaced_by_a_folder(lake: LakeHelper) -> None:
    _published(lake)
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "a.jsonl"
    data = path.read_bytes()
    path.unlink()
    path.mkdir()  # e.g. an unpacking tool that made a folder of the same name
    (path / "part-0").write_bytes(data)
    _outcome(lake)


def test_non_utf8_name_collides_with_its_escaped_spelling(lake: LakeHelper) -> None:
    """``recorded_name`` writes byte 0xFF as the four characters ``\\xff``; a file literally
    named that way records as the same path. The ledger then lists one path twice, and deleting
    the non-UTF-8 file goes unnoticed: the guard finds "its" path still in the listing."""
    folder = lake.root / "landing" / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True)
    (folder / os.fsdecode(b"x\xff.jsonl")).write_bytes(
        b"".join(line(event("click")) + b"\n" for _ in range(N))
    )
    (folder / "x\\xff.jsonl").write_bytes(line(event("click")) + b"\n")
    lake.ingest()
    paths = [r["landing_file"] for r in lake.ledger()]
    assert len(set(paths)) == len(paths), f"two landing files share one ledger path: {paths}"


def test_landing_file_zero_filled_at_the_same_size(lake: LakeHelper) -> None:
    """What a host crash during a re-upload leaves on many filesystems: the file keeps its size,
    its blocks read as NUL bytes. The size check passes; every row of the file leaves the day."""
    _published(lake)
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "a.jsonl"
    path.write_bytes(b"\x00" * path.stat().st_size)
    _outcome(lake)


def test_landing_file_rewritten_longer_with_fewer_lines(lake: LakeHelper) -> None:
    """A producer re-uploads the same name with other content (padded, re-serialised): larger,
    so the size check passes, but it holds fewer of the events that were stored."""
    _published(lake)
    path = lake.root / "landing" / f"dt={DAY.isoformat()}" / "a.jsonl"
    kept = path.read_bytes().splitlines(keepends=True)[:5]
    path.write_bytes(b"".join(kept) + b" " * path.stat().st_size + b"\n")
    _outcome(lake)
