"""Publishing a report folder (the Data Docs site) is safe when runs race: every publisher
returns, the last tree wins whole, and no staging folder is left behind."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from pipelines.lib.storage import Lake


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
