"""A generated month in a tmp_path lake, ingested, checked and rolled up, shared by the privacy
tests (building it is the slow part)."""

import gzip
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipelines.lib.contracts.run import run_contracts
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest import pii
from pipelines.lib.ingest.keyring import PiiKey
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import DAY, MODELS, MONTH, WEEK, build_rollup
from pipelines.lib.sample.config import SampleConfig
from pipelines.lib.sample.generator import generate

JUNE = date(2025, 6, 1)
DAYS = [JUNE + timedelta(days=n) for n in range(30)]
WEEKS = [date(2025, 6, 2) + timedelta(days=7 * n) for n in range(4)]
CONTRACT_DAYS = DAYS[9:12]


def build_month(root: Path) -> Lake:
    config = SampleConfig(
        start=JUNE,
        days=30,
        users=150,
        requests_per_day=40,
        error_rate=0.2,
        schema_violation_rate=0.02,
        files_per_dt=1,
    )
    generate(config, str(root))
    lake = Lake(str(root))
    for day in [JUNE - timedelta(days=1), *DAYS, DAYS[-1] + timedelta(days=1)]:
        ingest_partition(lake, day, PiiKey(pii.DEV_KEY), IngestSettings(memory_limit="512MB"))
    for day in CONTRACT_DAYS:
        run_contracts(lake, day, Thresholds(), memory_limit="512MB", data_docs=False)
    for grain, starts in ((DAY, DAYS), (WEEK, WEEKS), (MONTH, [JUNE])):
        for model in (m for m in MODELS if m.grain == grain):
            for start in starts:
                build_rollup(lake, model, start)
    return lake


def raw_user_counts(root: Path) -> Counter[str]:
    """How many landing lines name each raw user_id (the victims are the busiest)."""
    counts: Counter[str] = Counter()
    for path in sorted((root / "landing").glob("dt=*/*.jsonl*")):
        data = path.read_bytes()
        text = gzip.decompress(data) if path.suffix == ".gz" else data
        for line in text.splitlines():
            try:
                user = json.loads(line).get("user_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(user, str):
                counts[user] += 1
    return counts


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return build_month(tmp_path_factory.mktemp("privacy") / "lake")
