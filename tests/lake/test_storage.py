"""Publishing a report folder (the Data Docs site) is safe when runs race: every publisher
returns, the last tree wins whole, and no staging folder is left behind; on S3 a partition
folder's publish leaves exactly the new files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.lib.lake.storage import Lake
from tests.conftest import new_bucket


def test_racing_folder_publishers_all_succeed_and_one_whole_tree_wins(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    sources = []
    for n in range(8):
        source = tmp_path / f"site-{n}"
        (source / "pages").mkdir(parents=True)
        (source / "index.html").write_text(f"site {n}")
        (source / "pages" / "page.html").write_text(f"page {n}")
        sources.append(str(source))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda s: lake.publish_dir(s, "reports/data_docs"), sources * 3))

    final = tmp_path / "lake" / "reports" / "data_docs"
    index = (final / "index.html").read_text()
    assert index.startswith("site ")
    assert (final / "pages" / "page.html").read_text() == "page " + index.split()[-1]
    assert sorted(os.listdir(final.parent)) == ["data_docs"]


def test_s3_folder_publish_puts_the_new_files_then_deletes_the_rest(s3_endpoint, s3_credentials):
    bucket = new_bucket(s3_endpoint)
    lake = Lake(f"s3://{bucket}/lake", {"client_kwargs": {"endpoint_url": s3_endpoint}})
    rel = "events/event_type=click/event_date=2025-06-02"
    with lake.staged_dir(rel) as staging:
        for n in range(3):
            Path(staging, f"part-0000{n}-c0ffee.parquet").write_text(f"compacted {n}")
    assert [f.path.rsplit("/", 1)[-1] for f in lake.parquet_files(rel)] == [
        f"part-0000{n}-c0ffee.parquet" for n in range(3)
    ]
    with lake.staged_dir(rel) as staging:  # a re-ingest: one file replaces the three
        Path(staging, "part-00000.parquet").write_text("ingested")
    assert [f.path for f in lake.parquet_files(rel)] == [f"{rel}/part-00000.parquet"]
    with lake.open(f"{rel}/part-00000.parquet") as handle:
        assert handle.read() == b"ingested"
