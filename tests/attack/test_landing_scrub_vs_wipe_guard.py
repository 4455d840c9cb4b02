"""Erasure with ``rewrite_landing`` vs the refuse-to-wipe guard (found while attacking issue 20's
guard as it is being extended to files that shrank).

``lib/privacy/landing_erasure.py`` rewrites landing files without an erased user's lines: "a
rewritten file changes size, so the landing sensor re-runs every partition that reads it". A file
that shrank on purpose must not make that re-run refuse; the erased user's lines must stay out."""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.landing import landing_dates
from pipelines.lib.ingest.ledger import audit_ledger
from pipelines.lib.privacy.erasure import erase
from pipelines.lib.privacy.landing_erasure import scrub_landing
from pipelines.lib.privacy.requests import ErasureRequest
from tests.conftest import DAY, LakeHelper, event, line

USER = "victim-000777"


def test_day_re_ingests_after_its_landing_file_was_scrubbed(lake: LakeHelper) -> None:
    lake.land(
        DAY,
        "a.jsonl",
        [line(event("click", user_id=USER)) for _ in range(3)]
        + [line(event("click")) for _ in range(5)],
    )
    lake.ingest()
    erase(lake.lake, ErasureRequest("r-1", (USER,), datetime.now(UTC)), [pii.DEV_KEY])
    assert scrub_landing(lake.lake, [USER], landing_dates(DAY))
    lake.ingest()  # what the landing sensor's re-run does
    assert len(lake.events("click")) == 5
    assert audit_ledger(lake.lake, DAY).passed
