"""Partner bundles: the viewer tier's rollups of one month, packaged for hand-over.

``{root}/bundles/YYYY-MM/`` holds, per viewer-tier rollup model (``tiers.USER_COUNT_COLUMNS``),
one Parquet file with the model's rows of the month's periods that cover at least k users, plus:

* ``manifest.json``: the bundle (month, k, what was withheld) and per file its model, grain,
  periods, row count, size, Arrow schema and SHA-256;
* ``SHA256SUMS``: ``sha256sum`` lines for every other file, the manifest included, so a partner
  can check a download with coreutils (``sha256sum -c SHA256SUMS``) without our tool, and a
  changed manifest is caught too (it cannot hold its own checksum).

Periods: every day of the month, every Monday..Sunday week with at least one day in the month
(the weeks Dagster's ``TimeWindowPartitionMapping`` maps the month to: a week across a month
boundary is in both months' bundles, whole), and the month. Periods before the lake's first
partition date do not exist and are left out. A period not built yet fails the bundle, naming
it: a bundle is complete or not published.

The bundle is published as one folder (``Lake.staged_dir``): locally at once, on S3 file by file
(``verify_bundle`` then tells a half-published bundle from a whole one). Given the same rollups
a rebuild writes the same bytes (rows ordered, no timestamps), so a partner can compare
checksums across deliveries.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lib.catalog import tiers
from pipelines.lib.lake.calendar import days_between
from pipelines.lib.lake.sql import lake_connection, load_sql, sql_identifier
from pipelines.lib.lake.storage import Lake, sha256_hex
from pipelines.lib.rollups.run import DAY, GRAIN_KEYS, MODELS, MONTH, WEEK, period, rollup_dir

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
MANIFEST_FORMAT = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")


def bundle_dir(month_start: date) -> str:
    return f"bundles/{month_start:%Y-%m}"


def bundle_periods(month_start: date, first_date: date | None = None) -> dict[str, list[date]]:
    """The period starts a month's bundle holds, per grain (see the module docstring)."""
    first, last = period(MONTH, month_start)
    days = days_between(first, last)
    monday = first - timedelta(days=first.weekday())
    weeks = [monday + timedelta(weeks=n) for n in range((last - monday).days // 7 + 1)]
    floor = first_date or date.min
    return {
        DAY: [d for d in days if d >= floor],
        WEEK: [w for w in weeks if w >= floor],
        MONTH: [first] if first >= floor else [],
    }


@dataclass
class BundleFile:
    name: str
    model: str
    grain: str
    periods: list[str]
    rows: int
    rows_withheld: int
    size_bytes: int
    sha256: str
    schema: list[dict[str, object]]


@dataclass
class BundleResult:
    path: str  # relative to the lake root
    month: str
    files: list[BundleFile] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def rows_withheld(self) -> int:
        return sum(f.rows_withheld for f in self.files)


def build_bundle(
    lake: Lake,
    month_start: date,
    *,
    viewer_min_users: int = tiers.DEFAULT_VIEWER_MIN_USERS,
    first_date: date | None = None,
    memory_limit: str = "1GB",
    threads: int = 2,
) -> BundleResult:
    """Write and publish ``bundles/YYYY-MM/`` for the month starting ``month_start``."""
    started = time.monotonic()
    tiers.check_min_users(viewer_min_users)
    periods = bundle_periods(month_start, first_date)
    models = [m for m in MODELS if m.name in tiers.USER_COUNT_COLUMNS]
    sources = {m.name: _period_urls(lake, m.name, m.grain, periods[m.grain]) for m in models}
    missing = [
        f"{name} {rel}" for name, found in sources.items() for rel, urls in found if not urls
    ]
    if missing:
        raise FileNotFoundError(
            f"the bundle of {month_start:%Y-%m} needs every period of its rollups; missing "
            f"{len(missing)}, e.g. {', '.join(missing[:5])}: materialise those rollups first"
        )
    rel = bundle_dir(month_start)
    result = BundleResult(rel, f"{month_start:%Y-%m}")
    with lake.staged_dir(rel) as staging, lake_connection(lake, memory_limit, threads) as con:
        for model in models:
            urls = [url for _, found in sources[model.name] for url in found]
            key = GRAIN_KEYS[model.grain]
            column = tiers.USER_COUNT_COLUMNS[model.name]
            if not urls:  # a grain with no period in the lake's history (its first month)
                continue
            source = con.read_parquet(urls, hive_partitioning=True)
            [(total,)] = source.aggregate("count(*)").fetchall()
            # The viewer tier's rule, one SQL file: the model's user count as users_covered.
            k = sql_identifier(key)
            source.project(
                f"* exclude ({k}), cast({k} as date) as {k}, "
                f"{sql_identifier(column)} as users_covered"
            ).create_view("rollup_rows")
            table = con.sql(
                load_sql("bundles/viewer_rows.sql"), params={"min_users": viewer_min_users}
            ).to_arrow_table()
            con.execute("drop view rollup_rows")
            name = f"{model.name}.parquet"
            local = os.path.join(staging, name)
            pq.write_table(table, local, compression="zstd")
            result.files.append(
                BundleFile(
                    name=name,
                    model=model.name,
                    grain=model.grain,
                    periods=[d.isoformat() for d in periods[model.grain]],
                    rows=table.num_rows,
                    rows_withheld=total - table.num_rows,
                    size_bytes=os.path.getsize(local),
                    sha256=_sha256_local(local),
                    # As a reader sees it (the file's stored Arrow schema), which verify compares.
                    schema=schema_fields(pq.read_schema(local)),
                )
            )
        manifest = _manifest(result, month_start, viewer_min_users)
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as out:
            out.write(manifest)
        sums = [(f.sha256, f.name) for f in result.files]
        sums.append((_sha256_local(os.path.join(staging, MANIFEST)), MANIFEST))
        with open(os.path.join(staging, SUMS), "w", encoding="utf-8") as out:
            out.writelines(f"{digest}  {name}\n" for digest, name in sorted(sums, key=_by_name))
    result.seconds = time.monotonic() - started
    return result


def _by_name(entry: tuple[str, str]) -> str:
    return entry[1]


def _period_urls(
    lake: Lake, name: str, grain: str, starts: list[date]
) -> list[tuple[str, list[str]]]:
    return [(rel, lake.parquet_urls(rel)) for rel in (rollup_dir(name, grain, s) for s in starts)]


def _manifest(result: BundleResult, month_start: date, k: int) -> str:
    first, last = period(MONTH, month_start)
    document = {
        "format": MANIFEST_FORMAT,
        "bundle": result.month,
        "month_start": first.isoformat(),
        "month_end": last.isoformat(),
        "tier": tiers.VIEWER,
        "viewer_min_users": k,
        "rule": "a rollup row is included only if its user count column is at least "
        "viewer_min_users; smaller cells are withheld (rows_withheld per file)",
        "files": [
            {
                "name": f.name,
                "model": f.model,
                "grain": f.grain,
                "period_key": GRAIN_KEYS[f.grain],
                "user_count_column": tiers.USER_COUNT_COLUMNS[f.model],
                "periods": f.periods,
                "rows": f.rows,
                "rows_withheld": f.rows_withheld,
                "size_bytes": f.size_bytes,
                "sha256": f.sha256,
                "schema": f.schema,
            }
            for f in result.files
        ],
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def schema_fields(schema: pa.Schema) -> list[dict[str, object]]:
    """An Arrow schema as the manifest records it: name, type, nullable, in file order."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _sha256_local(path: str) -> str:
    with open(path, "rb") as handle:
        return sha256_hex(handle)


class BundleError(ValueError):
    """A bundle does not match its manifest; ``file`` names the offending file."""

    def __init__(self, file: str, message: str):
        super().__init__(f"{file}: {message}")
        self.file = file


@dataclass
class Verified:
    location: str
    bundle: str
    files: int
    rows: int


def verify_bundle(location: str, storage_options: dict | None = None) -> Verified:
    """Check a bundle folder (a path or an ``s3://`` URL) against its manifest and SHA256SUMS;
    raise ``BundleError`` naming the first bad file.

    Each data file has two recorded checksums (manifest and SHA256SUMS): the one that disagrees
    with the other and with the file is the bad one, so a changed byte is pinned on the file, the
    manifest or SHA256SUMS rather than on whichever is read first."""
    fs, base = fsspec.core.url_to_fs(location.rstrip("/"), **(storage_options or {}))
    fs.invalidate_cache()
    try:
        listing = {e["name"].rsplit("/", 1)[-1]: e for e in fs.ls(base, detail=True)}
    except FileNotFoundError as error:
        raise BundleError(location, "no such bundle folder") from error
    present = {n for n, e in listing.items() if e.get("type") == "file"}
    for required in (MANIFEST, SUMS):
        if required not in present:
            raise BundleError(required, "missing")

    def sha(name: str) -> str:
        with fs.open(f"{base}/{name}", "rb") as handle:
            return sha256_hex(handle)

    sums = _read_sums(fs, f"{base}/{SUMS}")
    try:
        with fs.open(f"{base}/{MANIFEST}", "rb") as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
        entries = {f["name"]: f for f in manifest["files"]}
        for entry in entries.values():
            int(entry["size_bytes"]), int(entry["rows"]), str(entry["sha256"]), entry["schema"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(MANIFEST, f"not a bundle manifest ({error!r})") from error
    expected = {*entries, MANIFEST, SUMS}
    for name in sorted(present - expected):
        raise BundleError(name, "extra file, not in the manifest")
    for name in sorted(expected - present):
        raise BundleError(name, "missing: listed in the manifest")
    for name in sorted(set(sums) ^ (expected - {SUMS})):
        raise BundleError(SUMS, f"its list of files differs from the manifest's at {name}")
    rows = 0
    for name, entry in sorted(entries.items()):
        actual = sha(name)
        if actual != entry["sha256"] and actual != sums[name]:
            raise BundleError(name, "sha256 matches neither the manifest nor SHA256SUMS")
        if actual != entry["sha256"]:
            raise BundleError(MANIFEST, f"its sha256 of {name} does not match the file")
        if actual != sums[name]:
            raise BundleError(SUMS, f"its line for {name} does not match the file")
        if int(listing[name].get("size") or 0) != entry["size_bytes"]:
            raise BundleError(MANIFEST, f"its size of {name} does not match the file")
        try:
            meta = pq.ParquetFile(f"{base}/{name}", filesystem=fs)
        except Exception as error:  # checksums agree, yet not Parquet: written wrong
            raise BundleError(name, f"not readable as Parquet ({error})") from error
        if meta.metadata.num_rows != entry["rows"]:
            raise BundleError(
                MANIFEST,
                f"says {entry['rows']} rows for {name}, which has {meta.metadata.num_rows}",
            )
        if schema_fields(meta.schema_arrow) != entry["schema"]:
            raise BundleError(MANIFEST, f"its schema of {name} differs from the file's")
        rows += entry["rows"]
    if sha(MANIFEST) != sums[MANIFEST]:
        # Every data file agrees with both: the manifest changed where it lists no checksum, or
        # SHA256SUMS changed on the manifest's own line; neither can vouch for the other.
        raise BundleError(
            MANIFEST, f"sha256 does not match its line in {SUMS} (one of the two was changed)"
        )
    return Verified(location, str(manifest.get("bundle")), len(entries), rows)


def _read_sums(fs, path: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    with fs.open(path, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or not _HEX64.fullmatch(digest) or not name or name in sums:
            raise BundleError(SUMS, f"line {number} is not '<sha256>  <file>' (or repeats one)")
        sums[name] = digest
    return sums
