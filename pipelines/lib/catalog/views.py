"""The analysts' catalog: one DuckDB file of views over the lake's Parquet, so an analyst opens
``data/lake.duckdb`` and writes ``select ... from rollups.traffic_daily`` instead of globs.

The file holds views only, never data: a view re-reads its files when queried, so the catalog
needs rewriting only when the set of tables changes (a new event type, a new rollup model, a
table's first file). The set of views is derived from code (the event schemas, the rollup
``MODELS``, the quality tables), and :func:`catalog_version` hashes it for the asset's
code_version.

Decisions, each for a reader we do not control:

* the file is written in DuckDB's v1.4.0 storage format: duckdb 2.0 writes format 69 by
  default, which the newest shell on PyPI (duckdb-cli 1.5.6, what the README tells analysts to
  install) refuses to open; views gain nothing from a newer format;
* paths are absolute (local) or full ``s3://`` URLs: DuckDB resolves a relative path in a view
  against the *querying* process's working directory, not the catalog file's folder;
* a table with no files yet gets no view: ``CREATE VIEW`` binds its query, and a glob that
  matches nothing fails there (and ``allow_empty``, new in 2.0, breaks the 1.5 shell);
* the file is built beside the target and renamed over it, so a reader (whose open handle keeps
  the old file) sees the old catalog or the new one, and a crash leaves the old one in place;
  anything an analyst created in the old file is gone, which is why the README says -readonly;
* every view has a ``COMMENT ON VIEW`` and every column it shows a ``COMMENT ON COLUMN``
  (``lib/catalog/column_docs.py``, the texts of the contract pages), so ``duckdb_columns()`` in the
  shell answers "what is this column?" without the docs at hand. The columns are those the view
  binds over the files, so one only older files hold is described too.

One file per access tier (``lib/catalog/tiers.py`` says what each shows): the engineer's at the
configured path, the analyst's and viewer's beside it (``lake.analyst.duckdb``,
``lake.viewer.duckdb``). A tier's view hides columns with ``COLUMNS(lambda c: ...)``, evaluated
when the view is queried, so a hidden column is a binder error, not a NULL; the viewer's views
add ``where <user count> >= k``; a schema a tier does not show is not created at all.

On S3 the views read ``s3://`` URLs. The writer binds them through the lake's own fsspec
filesystem; an analyst's DuckDB needs the httpfs extension (``INSTALL httpfs; LOAD httpfs;``)
and credentials (``CREATE SECRET (TYPE s3, PROVIDER credential_chain)``, plus ``ENDPOINT`` for
MinIO and the like) to query them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from pipelines.lib.catalog import column_docs, tiers
from pipelines.lib.catalog.tiers import EVENTS, QUALITY, ROLLUPS, Exposure
from pipelines.lib.lake.sql import sql_identifier, sql_literal
from pipelines.lib.lake.storage import Lake
from pipelines.lib.rollups.run import GRAIN_KEYS, MODELS
from pipelines.lib.schemas.downgrade import downgrade_columns, downgrade_view_name
from pipelines.lib.schemas.registry import accepted_versions, event_types, load_event_schemas

# Readable by the duckdb-cli 1.5.x shell and the 1.4 LTS shell alike (storage header 67).
STORAGE_VERSION = "v1.4.0"
SCHEMAS = (EVENTS, ROLLUPS, QUALITY)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class ViewSpec:
    """One view: ``schema.name`` over the Parquet files matching ``glob`` (relative to the lake
    root), with ``partition_key`` (a Hive folder ``key=YYYY-MM-DD``) typed as a date. A view of
    some columns only (``columns``, e.g. an event table as an older schema version saw it) shows
    them as its table ``table`` would in each tier."""

    schema: str
    name: str
    glob: str
    partition_key: str
    description: str
    columns: tuple[str, ...] = ()  # empty: every column
    table: str | None = None  # whose tier rules apply; default: the view's own name

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def exposure(self, tier: str) -> Exposure | None:
        return tiers.exposure(tier, self.schema, self.table or self.name)


def view_specs() -> list[ViewSpec]:
    """Every view the catalog can hold, in a stable order; from code only, never the lake."""
    specs = [*_event_views(), *_pinned_event_views(), *_rollup_views(), *_quality_views()]
    _check_specs(specs)
    return specs


def _event_views() -> list[ViewSpec]:
    return [
        ViewSpec(
            EVENTS,
            t,
            f"events/event_type={t}/*/*.parquet",
            "event_date",
            f"Valid {t} events: typed, deduplicated, identifiers hashed. Filter on event_date "
            "(the partition) to read only those days.",
        )
        for t in event_types()
    ]


def _pinned_event_views() -> list[ViewSpec]:
    """For consumers pinned to an older version: its columns only (newer ones left out)."""
    current = load_event_schemas()
    return [
        ViewSpec(
            EVENTS,
            downgrade_view_name(t, s.version),
            f"events/event_type={t}/*/*.parquet",
            "event_date",
            f"Valid {t} events (every version) with the columns of schema version {s.version} "
            f"only, for readers pinned to it; events.{t} has those of {current[t].version}.",
            columns=(*downgrade_columns(t, s.version), "event_date"),
            table=t,
        )
        for t, versions in accepted_versions().items()
        for s in versions
        if s.version != current[t].version
    ]


def _rollup_views() -> list[ViewSpec]:
    return [
        ViewSpec(
            ROLLUPS,
            m.name,
            f"rollups/{m.name}/*/*.parquet",
            GRAIN_KEYS[m.grain],
            f"{m.description} One partition per {GRAIN_KEYS[m.grain]}.",
        )
        for m in MODELS
    ]


# The quality schema's views: name, folder under the lake root, description.
_QUALITY_VIEWS = (
    (
        "contract_violations",
        "contracts",
        "One row per contract violation: family, rule, event, request_id, detail.",
    ),
    (
        "contract_rates",
        "quality",
        "Each contract rule's and family's checked, failed and rate per day.",
    ),
    (
        "ledger",
        "ledger",
        "Per landing file and day: lines taken = rows written + quarantined + duplicates.",
    ),
    (
        "quarantine",
        "quarantine",
        "Every rejected line: reason, detail, landing file and line, redacted text.",
    ),
)


def _quality_views() -> list[ViewSpec]:
    return [
        ViewSpec(QUALITY, name, f"{folder}/*/*.parquet", "event_date", description)
        for name, folder, description in _QUALITY_VIEWS
    ]


def _check_specs(specs: list[ViewSpec]) -> None:
    """Names are spliced into DDL (see _view_sql): each must be a plain identifier, in one of the
    catalog's schemas, and no two views may share a qualified name."""
    for spec in specs:
        _check_identifier(spec.schema)
        _check_identifier(spec.name)
        _check_identifier(spec.partition_key)
        if spec.schema not in SCHEMAS:
            raise ValueError(f"view {spec.qualified}: schema not one of {SCHEMAS}")
    names = [s.qualified for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(
            f"two views share a name: {sorted(n for n in names if names.count(n) > 1)}"
        )


def catalog_version(specs: list[ViewSpec] | None = None) -> str:
    """A short hash of every tier's views (name, source, glob, partition key, read options,
    hidden columns, the row filter with k as a placeholder), their comments (the views' and
    every column's) and the storage format: it changes exactly when what a catalog can show
    changes."""
    specs = view_specs() if specs is None else specs
    lines = sorted(
        f"{tier}: {_view_sql(s, '<root>', shown, '<k>')} -- {s.description}"
        for tier in tiers.TIERS
        for s in specs
        if (shown := s.exposure(tier)) is not None
    )
    tables: dict[str, list[str]] = {}
    for s in specs:
        tables.setdefault(s.schema, []).append(s.table or s.name)
    lines.append(f"columns: {column_docs.fingerprint(tables)}")
    digest = hashlib.sha256("\n".join([STORAGE_VERSION, *lines]).encode("utf-8"))
    return digest.hexdigest()[:12]


@dataclass
class CatalogResult:
    path: str
    written: list[str]  # schema.view
    skipped: dict[str, str] = field(default_factory=dict)  # schema.view -> why
    version: str = ""
    seconds: float = 0.0
    tier: str = tiers.ENGINEER
    withheld: list[str] = field(default_factory=list)  # schema.view the tier does not show
    # schema.view.column with no text in lib/catalog/column_docs.py (a test keeps this empty)
    undescribed: list[str] = field(default_factory=list)


def write_catalog(
    lake: Lake,
    path: str,
    *,
    specs: list[ViewSpec] | None = None,
    tier: str = tiers.ENGINEER,
    viewer_min_users: int = tiers.DEFAULT_VIEWER_MIN_USERS,
    log: Callable[[str], None] = lambda _msg: None,
) -> CatalogResult:
    """Write ``tier``'s catalog at ``path`` (a local file) with a view per table of the tier
    that has files."""
    started = time.monotonic()
    specs = view_specs() if specs is None else specs
    tiers.check_tier(tier)
    tiers.check_min_users(viewer_min_users)
    root = lake_location(lake)
    present, skipped, withheld = [], {}, []
    for spec in specs:
        shown = spec.exposure(tier)
        if shown is None:
            withheld.append(spec.qualified)
        elif _has_files(lake, spec.glob):
            present.append((spec, shown))
        else:
            skipped[spec.qualified] = f"no files match {spec.glob}"
            log(f"catalog ({tier}): skipping {spec.qualified}: no files match {spec.glob} yet")

    final = os.path.abspath(path)
    folder, name = os.path.split(final)
    # The lake's own atomic publish, on the catalog's (always local) folder.
    with Lake(folder).staged_file(name) as staging:
        undescribed = _build(
            lake, staging, root, present, _tier_schemas(tier, specs), viewer_min_users
        )
        # A WAL beside the target belongs to the file being replaced (a read-write session that
        # crashed); DuckDB refuses to open the new file with it ("WAL does not match database").
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{final}.wal")
    written = [s.qualified for s, _ in present]
    if undescribed:
        log(
            f"catalog ({tier}): no description for column(s) {', '.join(undescribed)}: "
            "add them to pipelines/lib/catalog/column_docs.py"
        )
    log(f"catalog ({tier}): wrote {len(written)} views to {final}")
    return CatalogResult(
        final,
        written,
        skipped,
        catalog_version(specs),
        time.monotonic() - started,
        tier,
        withheld,
        undescribed,
    )


def write_tier_catalogs(
    lake: Lake,
    engineer_path: str,
    *,
    tier_names: tuple[str, ...] = tiers.TIERS,
    viewer_min_users: int = tiers.DEFAULT_VIEWER_MIN_USERS,
    specs: list[ViewSpec] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, CatalogResult]:
    """One catalog file per tier: the engineer's at ``engineer_path``, the others beside it
    (``tiers.tier_path``). Each file is published atomically on its own."""
    return {
        tier: write_catalog(
            lake,
            tiers.tier_path(engineer_path, tier),
            specs=specs,
            tier=tier,
            viewer_min_users=viewer_min_users,
            log=log,
        )
        for tier in tier_names
    }


def _tier_schemas(tier: str, specs: list[ViewSpec]) -> list[str]:
    """The schemas a tier's file has: those with at least one view it may show, so a schema the
    tier never shows is a "does not exist" error rather than an empty namespace."""
    return [
        schema for schema in SCHEMAS if any(s.schema == schema and s.exposure(tier) for s in specs)
    ]


def lake_location(lake: Lake) -> str:
    """The lake root as a view must name it: an absolute local path, or the ``s3://`` URL."""
    if lake.is_local:
        return os.path.abspath(lake.path(""))
    if lake.root.startswith("s3://"):
        return lake.root
    raise ValueError(f"the catalog can point at a local or s3:// lake, not {lake.root!r}")


def view_statements(
    lake: Lake,
    specs: list[ViewSpec] | None = None,
    *,
    tier: str = tiers.ENGINEER,
    viewer_min_users: int = tiers.DEFAULT_VIEWER_MIN_USERS,
) -> list[str]:
    """The ``CREATE VIEW`` statements of ``tier`` for ``specs`` over this lake (whether or not
    files exist)."""
    root = lake_location(lake)
    return [
        _view_sql(s, root, shown, viewer_min_users)
        for s in (view_specs() if specs is None else specs)
        if (shown := s.exposure(tier)) is not None
    ]


def _build(
    lake: Lake,
    staging: str,
    root: str,
    specs: list[tuple[ViewSpec, Exposure]],
    schemas: list[str],
    viewer_min_users: int,
) -> list[str]:
    """Create the schemas and the views with their comments; returns the columns left without
    a description."""
    undescribed = []
    con = duckdb.connect(staging, config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        if not lake.is_local:
            # CREATE VIEW reads the files' footers to bind; without httpfs, read them via fsspec.
            con.register_filesystem(lake.fs)
        con.execute("begin")
        for schema in schemas:
            # DDL names cannot be bound parameters: they are validated identifiers from code.
            con.execute(f"create schema {_identifier(schema)}")
        for spec, shown in specs:
            con.execute(_view_sql(spec, root, shown, viewer_min_users))
            con.execute(
                f"comment on view {_identifier(spec.schema)}.{_identifier(spec.name)} "
                f"is {sql_literal(spec.description + _tier_note(shown, viewer_min_users))}"
            )
            undescribed += _comment_columns(con, spec)
        con.execute("commit")
        con.execute("checkpoint")  # everything in the file itself, no .wal beside it
    finally:
        con.close()
    return undescribed


def _comment_columns(con: duckdb.DuckDBPyConnection, spec: ViewSpec) -> list[str]:
    """A ``COMMENT ON COLUMN`` for every column the view shows (as bound over the files, so a
    column only older files have is described too); returns those with no description."""
    columns = con.execute(
        "select column_name from duckdb_columns() where schema_name = $schema "
        "and table_name = $name order by column_index",
        {"schema": spec.schema, "name": spec.name},
    ).fetchall()
    undescribed = []
    for (column,) in columns:
        text = column_docs.describe(spec.schema, spec.table or spec.name, column)
        if text is None:
            undescribed.append(f"{spec.qualified}.{column}")
            text = "Not described yet (pipelines/lib/catalog/column_docs.py has no text for it)."
        # Column names come from the files: quoted as identifiers, never spliced bare.
        con.execute(
            f"comment on column {_identifier(spec.schema)}.{_identifier(spec.name)}."
            f"{sql_identifier(column)} is {sql_literal(text)}"
        )
    return undescribed


def _view_sql(
    spec: ViewSpec,
    root: str,
    shown: Exposure | None = None,
    viewer_min_users: int | str = tiers.DEFAULT_VIEWER_MIN_USERS,
) -> str:
    # DuckDB cannot bind parameters in CREATE VIEW ("This type of statement can't be prepared")
    # nor in COMMENT ON, and a view must store its path anyway: the path is spliced in as a SQL
    # string literal (single quotes doubled by sql_literal), the names are validated identifiers,
    # k an int (or the version hash's placeholder).
    shown = shown or Exposure()
    pattern = sql_literal(f"{root}/{spec.glob}")
    key = sql_literal(spec.partition_key)
    return (
        f"create view {_identifier(spec.schema)}.{_identifier(spec.name)} as "
        f"select {_select_list(shown, spec.columns)} from read_parquet({pattern}, "
        "hive_partitioning = true, "
        f"hive_types = {{{key}: 'DATE'}}, union_by_name = true)"
        + _row_filter(shown, viewer_min_users)
    )


def _select_list(shown: Exposure, columns: tuple[str, ...] = ()) -> str:
    """``*``, or a COLUMNS lambda that keeps ``columns`` (when given) and drops the hidden ones.
    Evaluated per query, so it also drops a key-id column that only later files have (a plain
    EXCLUDE list would fail to bind on a name the files lack, and let a new one through), and
    keeps a listed column that older files lack."""
    tests = []
    if columns:
        tests.append(f"c in ({', '.join(sql_literal(n) for n in columns)})")
    if shown.hidden_columns:
        names = ", ".join(sql_literal(n) for n in shown.hidden_columns)
        tests.append(f"c not in ({names})")
    if shown.hide_key_ids:
        tests.append(f"not regexp_full_match(c, {sql_literal(tiers.KEY_ID_PATTERN)})")
    return f"columns(lambda c: {' and '.join(tests)})" if tests else "*"


def _row_filter(shown: Exposure, viewer_min_users: int | str) -> str:
    if shown.user_count_column is None:
        return ""
    if not (isinstance(viewer_min_users, int) or viewer_min_users == "<k>"):
        raise ValueError(f"viewer_min_users must be an int, not {viewer_min_users!r}")
    # A NULL count is not >= k: a row that does not say how many users it covers is withheld.
    return f" where {_identifier(shown.user_count_column)} >= {viewer_min_users}"


def _tier_note(shown: Exposure, viewer_min_users: int) -> str:
    notes = []
    if shown.hidden_columns:
        notes.append(f"Hidden in this tier: {', '.join(shown.hidden_columns)}.")
    if shown.hide_key_ids:
        notes.append("Key-id columns (pii_key_id...) are hidden in this tier.")
    if shown.user_count_column:
        notes.append(f"Rows with {shown.user_count_column} below {viewer_min_users} are withheld.")
    return "".join(f" {n}" for n in notes)


def _has_files(lake: Lake, rel_glob: str) -> bool:
    lake.fs.invalidate_cache()  # the lake changes under us; s3fs caches listings
    return bool(lake.fs.glob(lake.path(rel_glob)))


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier ([a-z_][a-z0-9_]*)")


def _identifier(name: str) -> str:
    """One of our own names, checked first: a typo in a spec fails here, not as an odd view."""
    _check_identifier(name)
    return sql_identifier(name)
