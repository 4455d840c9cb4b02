"""No raw PII anywhere, proven against an adversarial corpus (GitHub issue 19, point 4).

Every value of ``tests/ingest/pii_corpus/pii.tsv`` goes into every string field of every event type
(top-level strings, ``items[].canonical_id``, ``filters`` keys and values, a sentence of
``message``, a key no schema declares and its value), in a line of the current version and one
of the latest 1.x still accepted, beside clean events (``tests/privacy/pii_injection.py``). A
``raw_id`` value is also the line's own user and session id. That day goes through real Dagster
materialisations on a real instance in a tmp ``DAGSTER_HOME``: ingest (the day and the next,
which reads the same landing folder), the contracts, the daily rollups, the SLO checks and the
daily report, the catalog of every access tier; on the local lake also the week's rollups, the
weekly report and the month's partner bundle (see below). Then everything the run wrote is
scanned for every corpus value (any case; phones and cards of 10+ digits also as bare digits):
each Parquet file's rows as JSON text (struct and list members included) and its key-value
metadata, every other lake file as bytes, the catalog files as bytes and view by view, all of
``DAGSTER_HOME`` (run and event-log SQLite, compute logs), the run's temp folder, and what it
wrote in the system temp dir. The scan must find nothing; every line must end as a row or in
quarantine, where its field's policy says, with a ledger that adds up.

Runs on a local folder and on a real S3 API (a moto server on 127.0.0.1), each in about a
minute. The test day, 2021-02-22, is a Monday and the lake's first partition
(``TELEMETRY_FIRST_DATE``). Its week's other days read no corpus line: locally they are ingested
empty and rolled up directly, so the weekly rollups, the weekly report and the bundle can run;
the bundle packages the periods from the first partition on (the week's days and the week of
February), and no monthly rollup is built (it needs the whole month). On S3 the week is left out:
every empty day costs seconds there, and those steps read only rollups, which the day-level
steps wrote (and the scan read) on S3 too.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.defs.bundles.assets import build_partner_bundle_asset
from pipelines.defs.catalog.assets import build_catalog_asset
from pipelines.defs.contracts.assets import build_contracts_asset
from pipelines.defs.contracts.checks import build_family_check
from pipelines.defs.ingest.assets import build_ingest_assets
from pipelines.defs.ingest.checks import LEDGER_BALANCES, build_ledger_check
from pipelines.defs.partitions import daily_partitions, weekly_partitions
from pipelines.defs.reports.assets import build_report_asset
from pipelines.defs.resources import (
    CatalogResource,
    ContractsResource,
    DuckDBSettings,
    LakeResource,
    PiiResource,
    ReportsResource,
    RollupsResource,
    SloResource,
)
from pipelines.defs.rollups.assets import build_rollup_asset
from pipelines.defs.slo.checks import build_slo_checks
from pipelines.lib.catalog import tiers
from pipelines.lib.contracts.rules import FAMILIES
from pipelines.lib.ingest.erased_users import ERASED
from pipelines.lib.ingest.partition import IngestSettings, ingest_partition
from pipelines.lib.lake.storage import Lake
from pipelines.lib.reports.data import DAILY, WEEKLY
from pipelines.lib.rollups.run import DAY, MODELS, MODELS_BY_NAME, WEEK, build_rollup
from pipelines.lib.schemas.registry import accepted_versions, event_types
from tests.conftest import new_bucket
from tests.privacy.pii_injection import (
    EXTRA_KEY,
    ITEM,
    OBJECT_KEY,
    OBJECT_VALUE,
    RAW_ID,
    ROW,
    TEXT,
    Line,
    PiiValue,
    Scanner,
    clean_lines,
    describe,
    injected_lines,
    is_exempt,
    load_corpus,
)

TEST_DAY = date(2021, 2, 22)  # a Monday, the lake's first partition (TELEMETRY_FIRST_DATE)
WEEK_DAYS = [TEST_DAY + timedelta(days=n) for n in range(7)]  # the last week of February 2021
MONTH_START = date(2021, 2, 1)
TEST_KEY = "pii-corpus-e2e-key-0123456789-abcdefghij"  # >= 32 bytes, not the dev key
VIEWER_MIN_USERS = 2  # the smallest k: the viewer catalog and the bundle show the most rows
SYSTEM_TMP = Path(tempfile.gettempdir())
TOKEN = r"<([a-z0-9_]+):[0-9a-f]{16}>"


@dataclass
class Landed:
    files: dict[str, bytes]  # landing path (relative to the lake root) -> content as written
    lines: list[Line]

    def by_place(self) -> dict[tuple[str, int], Line]:
        return {(line.file, line.line_no): line for line in self.lines}


def _versions_to_inject() -> list:
    """Per event type: the current version and the latest 1.x it still accepts."""
    chosen = []
    for versions in accepted_versions().values():
        current = versions[-1]
        older = [v for v in versions if v.semver.major < current.semver.major]
        assert older, f"{current.event_type}: no older accepted version"
        chosen += [current, older[-1]]
    return chosen


@pytest.fixture(scope="module")
def corpus() -> list[PiiValue]:
    values = load_corpus()
    assert len(values) >= 300 and {v.cls for v in values} >= {
        "email",
        "phone",
        "card",
        "iban",
        "ipv4",
        "ipv6",
        RAW_ID,
    }
    return values


@pytest.fixture(scope="module")
def landed(corpus) -> Landed:
    return land_corpus(corpus)


def land_corpus(corpus: list[PiiValue]) -> Landed:
    """The landing files of the test day: one per event type of injected lines (request's
    gzipped), one of clean events. The same lines land on both backends."""
    rng = random.Random(19)
    lines = list(injected_lines(_versions_to_inject(), corpus, TEST_DAY, rng))
    by_file: dict[str, list[Line]] = defaultdict(list)
    for line in lines:
        by_file[f"pii-{line.target.event_type}.jsonl"].append(line)
    by_file["clean.jsonl"] = clean_lines(corpus, TEST_DAY, rng)
    files = {}
    for name, group in by_file.items():
        rel = f"landing/dt={TEST_DAY.isoformat()}/{name}" + (".gz" if "request" in name else "")
        for n, line in enumerate(group, start=1):
            line.file, line.line_no = rel, n
        data = b"\n".join(line.text() for line in group) + b"\n"
        files[rel] = data
    return Landed(files, [line for group in by_file.values() for line in group])


@dataclass
class Run:
    backend: str
    lake: Lake
    landed: Landed
    scanner: Scanner
    fates: dict[tuple[str, int], list[str]]  # (landing file, line) -> where it ended
    quarantine: list[dict]
    ledger: list[dict]
    scrubbed: list[dict]  # stored rows of error.message / request.filters
    events_on_day: int
    checks: dict[str, bool] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class WriteLog:
    """The files this Python process opens for writing while ``recording`` (an audit hook, added
    once per process). The system temp dir is shared with every other process of the machine:
    what the run wrote there is found by this log, not by the folder's listing."""

    _installed = False
    recording: set[str] | None = None
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        if event != "open" or cls.recording is None:
            return
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & cls._WRITE_FLAGS
        )
        if writes:
            cls.recording.add(os.path.realpath(os.fsdecode(path)))

    @classmethod
    def start(cls) -> None:
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True
        cls.recording = set()

    @classmethod
    def stop(cls) -> set[str]:
        written, cls.recording = cls.recording or set(), None
        return written


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class Steps:
    """Dagster materialisations on one instance, each timed and required to succeed."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict):
        self.instance, self.resources = instance, resources
        self.seconds: dict[str, float] = {}
        self.checks: dict[str, bool] = {}

    def run(
        self, name: str, assets: list, key: str | None, gated: bool = False, **kwargs
    ) -> dg.ExecuteInProcessResult:
        """``gated``: the step has blocking checks the adversarial day may fail (the contracts:
        injected events have no request); the asset must still be materialised."""
        started = time.monotonic()
        result = dg.materialize(
            assets,
            instance=self.instance,
            resources=self.resources,
            partition_key=key,
            raise_on_error=not gated,
            **kwargs,
        )
        assert result.success or (gated and result.get_asset_materialization_events()), name
        for evaluation in result.get_asset_check_evaluations():
            self.checks[f"{name}: {evaluation.check_name}"] = evaluation.passed
        self.seconds[name] = round(time.monotonic() - started, 2)
        return result

    def direct(self, name: str, work) -> None:
        started = time.monotonic()
        work()
        self.seconds[name] = round(time.monotonic() - started, 2)


def _build_everything(lake: Lake, steps: Steps, on_s3: bool, keyring) -> list[str]:
    """Every step on the test day, through Dagster; on a local lake also its week's and the
    bundle. Returns the steps left out."""
    daily, weekly = daily_partitions(), weekly_partitions()
    day, next_day = TEST_DAY.isoformat(), WEEK_DAYS[1].isoformat()
    ingest = [
        build_ingest_assets(daily, on_s3=on_s3),
        build_ledger_check(daily),
        build_contracts_asset(daily),
        *[build_family_check(f, daily) for f in FAMILIES],
    ]
    # The days whose ingest reads the corpus' landing folder dt=D: D-2 .. D+1, but D is the
    # first partition.
    for key in (day, next_day):
        steps.run(f"ingest {key}", ingest, key, selection=dg.AssetSelection.groups("ingest"))
    steps.run("contracts", ingest, day, gated=True, selection=dg.AssetSelection.groups("contracts"))
    day_models = [m for m in MODELS if m.grain == DAY]
    steps.run("daily rollups", [build_rollup_asset(m, daily, on_s3) for m in day_models], day)
    traffic_daily = build_rollup_asset(MODELS_BY_NAME["traffic_daily"], daily, on_s3)
    steps.run("slo checks", [traffic_daily, build_slo_checks(daily)], day)
    steps.run("daily report", [build_report_asset(DAILY, daily)], day)
    if on_s3:
        skipped = ["weekly rollups", "weekly report", "partner bundle"]
    else:
        skipped = ["monthly rollups (need the whole month)"]

        def fill_week() -> None:
            # The week's other days read no corpus line: ingested and rolled up directly.
            settings = IngestSettings(memory_limit="1GB")
            for d in WEEK_DAYS[2:]:
                ingest_partition(lake, d, keyring, settings)
            for d in WEEK_DAYS[1:]:
                for model in day_models:
                    build_rollup(lake, model, d)

        steps.direct("the week's other days (direct)", fill_week)
        week_models = [build_rollup_asset(m, weekly, on_s3) for m in MODELS if m.grain == WEEK]
        steps.run("weekly rollups", week_models, day)
        steps.run("weekly report", [build_report_asset(WEEKLY, weekly)], day)
        # February's partner bundle. The lake starts on the test day: the bundle leaves out the
        # month's periods before it (as for any lake's first month) and packages the week's days
        # and the week. Monthly partitions defined from that Monday would start in March, so
        # this asset alone is defined from February 1st; it reads the first partition date (its
        # floor) when it runs.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TELEMETRY_FIRST_DATE", MONTH_START.isoformat())
            bundle = build_partner_bundle_asset(on_s3)
        steps.run("partner bundle", [bundle], MONTH_START.isoformat())
    steps.run("catalogs", [build_catalog_asset()], None)
    return skipped


def _scan(
    scanner: Scanner,
    lake: Lake,
    catalogs: Path,
    home: Path,
    private_tmp: Path,
    system_tmp_files: list[str],
) -> None:
    """Everything the run wrote: the lake but its landing folder (the input), the catalogs,
    DAGSTER_HOME, the run's temp folder and its files in the system temp dir."""
    if not lake.is_local:
        scanner.con.register_filesystem(lake.fs)
    lake.fs.invalidate_cache()
    base = lake.path("")
    for path in sorted(lake.fs.find(base)):
        rel = path[len(base) :].lstrip("/")
        if rel.startswith("landing/"):
            continue  # the input: raw lines, as producers sent them
        where = f"lake:{rel}"
        if rel.endswith(".parquet"):
            url = lake.url(rel).replace("'", "''")
            scanner.add_rows(
                where, f"select * from read_parquet('{url}', hive_partitioning = false)"
            )
            scanner.add_rows(
                f"{where} (key-value metadata)",
                f"select key::varchar as k, value::varchar as v from parquet_kv_metadata('{url}')",
            )
        else:
            scanner.add_bytes(where, lake.fs.cat_file(path))
        scanner.flush()
    for path in _files_under(catalogs):
        scanner.add_bytes(f"catalog:{path.name}", path.read_bytes())
        if path.suffix != ".duckdb":
            continue
        quoted = str(path).replace("'", "''")
        scanner.con.execute(f"attach '{quoted}' as cat (read_only)")
        try:
            views = scanner.con.execute(
                "select schema_name, view_name from duckdb_views() "
                "where database_name = 'cat' and not internal order by all"
            ).fetchall()
            assert views, path
            for schema, view in views:
                scanner.add_rows(
                    f"catalog:{path.name} view {schema}.{view}",
                    f'select * from cat."{schema}"."{view}"',
                )
                scanner.flush()
        finally:
            scanner.con.execute("detach cat")
    for root, label in ((home, "dagster_home"), (private_tmp, "tmp")):
        _scan_files(scanner, label, _files_under(root), root)
    _scan_files(scanner, "system tmp", [Path(p) for p in system_tmp_files])


def _scan_files(scanner: Scanner, label: str, paths: list[Path], root: Path | None = None) -> None:
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:  # gone again, or not a regular file
            continue
        scanner.add_bytes(f"{label}:{path.relative_to(root) if root else path}", data)
    scanner.flush()


def _read_outcome(lake: Lake, landed: Landed) -> dict:
    con = duckdb.connect()
    if not lake.is_local:
        con.register_filesystem(lake.fs)
    fates: dict[tuple[str, int], list[str]] = defaultdict(list)
    scrubbed, events = [], 0
    for event_type in event_types():
        urls = lake.parquet_urls(f"events/event_type={event_type}/event_date={TEST_DAY}")
        if not urls:
            continue
        con.read_parquet(urls, hive_partitioning=False).create_view("stored")
        for file, line_no in con.execute(
            "select landing_file, landing_line from stored"
        ).fetchall():
            fates[(file, line_no)].append(ROW)
            events += 1
        for column in tiers.scrubbed_fields(event_type):
            scrubbed += [
                {"event_type": event_type, "column": column, "file": f, "line": n, "value": v}
                for f, n, v in con.execute(
                    f'select landing_file, landing_line, "{column}"::varchar from stored'
                ).fetchall()
            ]
        con.execute("drop view stored")
    quarantine = lake.read_partition(f"quarantine/event_date={TEST_DAY}").to_pylist()
    for row in quarantine:
        fates[(row["landing_file"], row["line_no"])].append(row["reason"])
    ledger = [
        row
        for folder in lake.list_dirs("ledger")
        for row in lake.read_partition(f"ledger/{folder}").to_pylist()
    ]
    return {
        "fates": dict(fates),
        "quarantine": quarantine,
        "ledger": ledger,
        "scrubbed": scrubbed,
        "events_on_day": events,
    }


@pytest.fixture(scope="module", params=["local", "s3"])
def run(request, tmp_path_factory, corpus, landed) -> Run:
    started = time.monotonic()
    patch = pytest.MonkeyPatch()
    request.addfinalizer(patch.undo)
    base = tmp_path_factory.mktemp(f"pii-e2e-{request.param}")
    patch.setenv("TELEMETRY_FIRST_DATE", TEST_DAY.isoformat())
    home = base / "dagster_home"
    home.mkdir()
    patch.setenv("DAGSTER_HOME", str(home))
    # Every temp file of this process goes to a folder of its own (scanned whole). The system
    # temp dir is compared before and after as well, for anything written past tempfile.
    system_before = set(os.listdir(SYSTEM_TMP))
    private_tmp = base / "tmp"
    private_tmp.mkdir()
    patch.setattr(tempfile, "tempdir", str(private_tmp))
    patch.setenv("TMPDIR", str(private_tmp))
    endpoint = None
    if request.param == "s3":
        request.getfixturevalue("s3_credentials")
        endpoint = request.getfixturevalue("s3_endpoint")
        root = f"s3://{new_bucket(endpoint)}/lake"
    else:
        root = str(base / "lake")
    lake_resource = LakeResource(root=root, s3_endpoint_url=endpoint)
    lake = lake_resource.lake()
    for rel, data in landed.files.items():
        lake.fs.makedirs(os.path.dirname(lake.path(rel)), exist_ok=True)
        lake.fs.pipe_file(
            lake.path(rel), gzip.compress(data, mtime=0) if rel.endswith(".gz") else data
        )
    catalogs = base / "catalogs"
    pii_resource = PiiResource(key=TEST_KEY)
    resources = {
        "lake": lake_resource,
        "pii": pii_resource,
        "duckdb": DuckDBSettings(memory_limit="1GB"),
        "contracts": ContractsResource(),
        "rollups": RollupsResource(),
        "slo": SloResource(),
        "reports": ReportsResource(),
        "catalog": CatalogResource(
            path=str(catalogs / "lake.duckdb"), viewer_min_users=VIEWER_MIN_USERS
        ),
    }
    instance = dg.DagsterInstance.get()
    steps = Steps(instance, resources)
    WriteLog.start()
    try:
        skipped = _build_everything(lake, steps, request.param == "s3", pii_resource.keyring())
    finally:
        instance.dispose()
        written = WriteLog.stop()
    outcome = _read_outcome(lake, landed)
    basetemp = tmp_path_factory.getbasetemp().resolve()  # its folders are scanned one by one
    new_entries = set(os.listdir(SYSTEM_TMP)) - system_before
    ours = sorted(
        p
        for p in written
        if Path(p).is_relative_to(SYSTEM_TMP.resolve())
        and not Path(p).is_relative_to(basetemp)
        and os.path.isfile(p)
    )
    scan_started = time.monotonic()
    scanner = Scanner(corpus)
    _scan(scanner, lake, catalogs, home, private_tmp, ours)
    steps.seconds["scan"] = round(time.monotonic() - scan_started, 2)
    steps.seconds["total"] = round(time.monotonic() - started, 2)
    print(
        f"\n[{request.param}] {len(landed.lines)} lines; scanned {scanner.files} files "
        f"({scanner.file_bytes} bytes) and {scanner.tables} tables/views ({scanner.rows} rows), "
        f"{scanner.text_bytes} bytes of text, for {scanner.values} values ({scanner.needles} "
        f"forms); system temp dir: {len(ours)} files written by this run, {len(new_entries)} new "
        f"entries in all; "
        f"findings: {len(scanner.findings)}; not run: {skipped}; seconds: {steps.seconds}"
    )
    return Run(
        backend=request.param,
        lake=lake,
        landed=landed,
        scanner=scanner,
        checks=steps.checks,
        seconds=steps.seconds,
        **outcome,
    )


# --- the proof ----------------------------------------------------------------------------------


def test_the_scanner_finds_every_value_where_it_was_put(corpus, landed, tmp_path):
    """The scan can fail: every corpus value is found in the raw landing lines, and in a Parquet
    file inside a struct in a list (the column named), in any case, digits apart."""
    scanner = Scanner(corpus)
    for rel, data in landed.files.items():
        scanner.add_bytes(rel, data)
    scanner.flush()
    assert {f.pii for f in scanner.findings} == {p for p in corpus if not is_exempt(p)}
    card = next(p for p in corpus if p.cls == "card" and " " in p.value)
    email = next(p for p in corpus if p.cls == "email")
    nested = tmp_path / "nested.parquet"
    scanner.con.execute(
        f"copy (select [{{'note': 'paid with {card.value.replace(' ', '-')}'}}] as items, "
        f"'{email.value.upper()}' as contact) to '{nested}' (format parquet)"
    )
    scanner.findings.clear()
    scanner.add_rows("nested", f"select * from read_parquet('{nested}')")
    scanner.flush()
    found = {(f.where, f.pii, f.form) for f in scanner.findings}
    assert ("nested [items]", card, "digits only") in found
    assert ("nested [contact]", email, "any case") in found


def test_no_corpus_value_is_anywhere_the_run_wrote(run, corpus):
    scanner = run.scanner
    assert scanner.values == sum(1 for p in set(corpus) if not is_exempt(p))
    assert scanner.files > 20 and scanner.tables > 20, "the scan read too little to prove much"
    assert not scanner.findings, (
        f"{len(scanner.findings)} corpus value(s) found ({run.backend}):\n"
        + describe(scanner.findings)
    )


def test_every_line_is_a_row_or_quarantined_and_the_ledger_adds_up(run):
    places = run.landed.by_place()
    lost = [p for p in places if p not in run.fates]
    twice = {p: f for p, f in run.fates.items() if len(f) > 1}
    strangers = [p for p in run.fates if p not in places]
    assert not lost and not twice and not strangers, (
        lost[:5],
        list(twice.items())[:5],
        strangers[:5],
    )
    taken: Counter[str] = Counter()
    for row in run.ledger:
        parts = row["rows_written"] + row["quarantined"] + row["duplicates"] + row[ERASED]
        assert row["lines_taken"] == parts, row
        taken[row["landing_file"]] += row["lines_taken"]
    expected = {rel: data.count(b"\n") for rel, data in run.landed.files.items()}
    assert dict(taken) == expected
    assert all(v for k, v in run.checks.items() if LEDGER_BALANCES in k), run.checks


def _outcomes(run) -> dict[tuple[str, ...], Counter[str]]:
    """(field, version, class, expected) -> what happened, counted."""
    grouped: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for place, line in run.landed.by_place().items():
        if line.pii is not None and is_exempt(line.pii):
            continue
        [actual] = run.fates.get(place, ["lost"])
        label = line.target.label if line.target else "(clean)"
        kind = f"{line.target.event_type} {line.target.version}" if line.target else ""
        cls = line.pii.cls if line.pii else ""
        grouped[(label, kind, cls, line.expected)][actual] += 1
    return grouped


def test_each_line_ends_where_its_fields_policy_says(run):
    wrong = {key: dict(actual) for key, actual in _outcomes(run).items() if set(actual) != {key[3]}}
    listing = "\n".join(
        f"{label} ({kind}, {cls}): expected {expected}, got {got}"
        for (label, kind, cls, expected), got in sorted(wrong.items())
    )
    assert not wrong, f"{len(wrong)} (field, version, class) groups ended elsewhere:\n{listing}"


def test_pii_in_field_details_name_the_field_and_class_never_the_value(run):
    places = run.landed.by_place()
    problems = Counter()
    seen = 0
    for row in run.quarantine:
        line = places.get((row["landing_file"], row["line_no"]))
        if line is None or line.pii is None or row["reason"] != "pii_in_field":
            continue
        seen += 1
        detail = row["detail"] or ""
        if line.pii.value.lower() in detail.lower():
            problems[f"{line.target.label}: detail holds the value ({line.pii.cls})"] += 1
        elif not (line.target.label in detail and line.pii.cls in detail):
            problems[f"{line.target.label} ({line.pii.cls}): detail {detail!r}"] += 1
    assert seen > 0
    assert not problems, "\n".join(f"{n:5d} x {p}" for p, n in sorted(problems.items()))


def test_pii_in_scrubbed_fields_is_stored_as_typed_tokens(run):
    places = run.landed.by_place()
    expected = {
        place
        for place, line in places.items()
        if line.target is not None
        and line.target.kind in (TEXT, OBJECT_KEY, OBJECT_VALUE)
        and line.expected == ROW
        and not is_exempt(line.pii)
    }
    problems = Counter()
    tokens = Counter()
    checked = set()
    for row in run.scrubbed:
        if (row["file"], row["line"]) not in expected:
            continue
        line = places[(row["file"], row["line"])]
        checked.add((row["file"], row["line"]))
        found = set(re.findall(TOKEN, row["value"] or ""))
        tokens.update(found)
        if line.pii.cls not in found:
            problems[
                f"{line.target.label} ({line.pii.cls}/{line.pii.fmt}): tokens {sorted(found)}"
            ] += 1
    assert tokens, "no scrubbed row carries a typed token"
    assert checked == expected, f"{len(expected - checked)} lines not stored"
    assert not problems, "\n".join(f"{n:5d} x {p}" for p, n in sorted(problems.items()))


def test_the_day_is_not_vacuous(run):
    assert run.events_on_day >= 200
    reasons = Counter(row["reason"] for row in run.quarantine)
    assert reasons["pii_in_field"] > 0 and reasons["schema_violation"] > 0, reasons
    columns = {row["column"] for row in run.scrubbed if re.search(TOKEN, row["value"] or "")}
    assert {"message", "filters"} <= columns, columns
    assert any(line.target and line.target.kind == ITEM for line in run.landed.lines)
    assert any(line.target and line.target.kind == EXTRA_KEY for line in run.landed.lines)
