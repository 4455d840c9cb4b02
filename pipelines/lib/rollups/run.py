"""Build one rollup for one period (a day, a Monday..Sunday week or a calendar month): register
the period's Parquet as DuckDB views, run the model's SQL file, finish it (period-over-period
change, experiment statistics) and publish ``rollups/<name>/<grain key>=<start>/`` atomically."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lib.contracts.run import VIOLATIONS_SCHEMA
from pipelines.lib.ingest.ledger import ledger_schema
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.ingest.quarantine import QUARANTINE_SCHEMA
from pipelines.lib.lake.calendar import days_between
from pipelines.lib.lake.paths import (
    PART_FILE,
    contracts_dir,
    events_dir,
    ledger_dir,
    quarantine_dir,
)
from pipelines.lib.lake.publish import recover_pending
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake, write_table
from pipelines.lib.rollups import columns, experiments
from pipelines.lib.rollups.change import with_change
from pipelines.lib.schemas.registry import event_types, load_event_schemas

DAY, WEEK, MONTH = "day", "week", "month"
GRAIN_KEYS = {DAY: "event_date", WEEK: "week_start", MONTH: "month_start"}
TRAFFIC_KEYS = ["experiment_id", "bucket", "surface", "device_type", "is_all_traffic"]


def period(grain: str, start: date) -> tuple[date, date]:
    """The inclusive (first, last) day of the period that starts on ``start``."""
    if grain == DAY:
        return start, start
    if grain == WEEK:
        if start.weekday() != 0:
            raise ValueError(f"a week starts on a Monday, {start} is not one")
        return start, start + timedelta(days=6)
    if start.day != 1:
        raise ValueError(f"a month starts on the 1st, {start} does not")
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, following - timedelta(days=1)


def previous_start(grain: str, start: date) -> date:
    if grain == MONTH:
        return (start - timedelta(days=1)).replace(day=1)
    return start - timedelta(days=7 if grain == WEEK else 1)


def rollup_dir(name: str, grain: str, start: date) -> str:
    return f"rollups/{name}/{GRAIN_KEYS[grain]}={start.isoformat()}"


def rollup_file(name: str, grain: str, start: date) -> str:
    return f"{rollup_dir(name, grain, start)}/{PART_FILE}"


@dataclass(frozen=True)
class RollupSettings:
    control_bucket: str = "control"
    # experiment_id -> bucket -> expected share of users; an experiment not listed: equal.
    splits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    memory_limit: str = "2GB"
    threads: int = 2


@dataclass(frozen=True)
class Job:
    """What a model's finishing step may need besides its SQL result."""

    lake: Lake
    model: Model
    start: date
    settings: RollupSettings


def _change_since_previous(table: pa.Table, job: Job) -> pa.Table:
    rel = rollup_dir(job.model.name, job.model.grain, previous_start(job.model.grain, job.start))
    previous = job.lake.read_partition(rel) if job.lake.parquet_files(rel) else None
    skip = {*TRAFFIC_KEYS, "period_start", "period_end"}
    metrics = [
        f.name
        for f in table.schema
        if f.name not in skip and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    return with_change(table, previous, TRAFFIC_KEYS, metrics)


def _evaluate_experiments(table: pa.Table, job: Job) -> pa.Table:
    return experiments.evaluate(
        table,
        control=job.settings.control_bucket,
        splits=job.settings.splits,
        # Users are the unit of randomisation: heavy users would skew request counts.
        srm_counts="users_assigned",
    )


@dataclass(frozen=True)
class Model:
    name: str
    sql: str  # under sql/rollups/
    grain: str
    description: str
    columns: Mapping[str, str]  # name -> definition (lib/rollups/columns.py)
    rows: str  # how many rows a period has, as a formula of the dimensions (for the docs)
    finish: Callable[[pa.Table, Job], pa.Table] | None = None
    reads: tuple[str, ...] = ()  # lake tables besides events: quarantine, ledger, contracts
    # Files under sql/rollups/ run first on the model's connection, in order, without parameters:
    # the shared views and macros its SQL reads (as a dbt model would ref() another).
    prelude: tuple[str, ...] = ()


TRAFFIC_ROWS = (
    "1 (all traffic) + distinct (experiment_id, bucket, surface, device_type) among the requests "
    "of the period's events (+ 1 if an event's request is not found, or an error carries none)"
)

MODELS = (
    Model(
        "traffic_daily",
        "traffic.sql",
        DAY,
        "Requests to clicks, users, CTR, coverage, latency, errors and engagement per "
        "(experiment, bucket, surface, device) and for all traffic, per day.",
        columns=columns.TRAFFIC,
        rows=TRAFFIC_ROWS,
        prelude=("traffic_attributed.sql", "traffic_macros.sql"),
    ),
    Model(
        "traffic_hourly",
        "hourly.sql",
        DAY,
        "Requests, impressions, clicks, errors and latency p95 per UTC hour of the day.",
        columns=columns.HOURLY,
        rows="the UTC hours of the day with at least one event (at most 24)",
    ),
    Model(
        "errors_daily",
        "errors.sql",
        DAY,
        "Errors per (component, severity, error_code): count, requests affected, first and last "
        "seen, rank by count.",
        columns=columns.ERRORS,
        rows="distinct (component, severity, error_code) among the day's errors",
    ),
    Model(
        "traffic_parts",
        "traffic_parts.sql",
        DAY,
        "The day's exact, mergeable pieces for weekly and monthly traffic: distinct users, items "
        "and sessions per dimension combination, and every ranking's latency and coverage and "
        "every click's dwell time.",
        columns=columns.PARTS,
        rows="per dimension combination: its distinct users, ranked items, impressed items and "
        "sessions, plus one row per ranking (twice: latency, coverage) and per click with dwell",
        prelude=("traffic_attributed.sql",),
    ),
    Model(
        "traffic_weekly",
        "traffic_merged.sql",
        WEEK,
        "The daily traffic metrics for the week (Monday..Sunday, UTC), merged exactly from its "
        "seven days (counts added; distinct counts and percentiles from the days' members and "
        "values), with each metric's change against the previous week.",
        columns=columns.TRAFFIC,
        rows=TRAFFIC_ROWS,
        finish=_change_since_previous,
        reads=("traffic_daily", "traffic_parts"),
        prelude=("traffic_macros.sql",),
    ),
    Model(
        "experiments_weekly",
        "experiment_stats.sql",
        WEEK,
        "Per experiment and bucket: exposure, CTR with a 95% interval (delta method over "
        "requests), lift against control with interval and p-value, sample-ratio mismatch (on "
        "users), "
        "guardrails (latency p95, error rate).",
        columns=columns.EXPERIMENTS,
        rows="distinct (experiment_id, bucket) among the week's requests with an experiment_id",
        finish=_evaluate_experiments,
    ),
    Model(
        "traffic_monthly",
        "traffic_merged.sql",
        MONTH,
        "The traffic metrics for the month, merged exactly from its days like the weekly ones, "
        "with each metric's change against the previous month.",
        columns=columns.TRAFFIC,
        rows=TRAFFIC_ROWS,
        finish=_change_since_previous,
        reads=("traffic_daily", "traffic_parts"),
        prelude=("traffic_macros.sql",),
    ),
    Model(
        "compliance_monthly",
        "compliance.sql",
        MONTH,
        "Rows stored per PII class, quarantined lines per reason, duplicates dropped and "
        "contract violations per rule, for the month.",
        columns=columns.COMPLIANCE,
        rows="(event type, PII class) pairs of the schemas + quarantine reasons seen + 1 "
        "(duplicates) + (family, rule) pairs violated",
        reads=("quarantine", "ledger", "contracts"),
    ),
)
MODELS_BY_NAME = {m.name: m for m in MODELS}


@dataclass
class RollupResult:
    name: str
    start: date
    end: date
    rows: int
    bytes_written: int
    seconds: float
    path: str


def _pii_fields() -> pa.Table:
    rows = [
        {"event_type": t, "field": name, "pii_class": spec.get("x-pii", "none")}
        for t, schema in load_event_schemas().items()
        for name, spec in schema.properties.items()
    ]
    return pa.Table.from_pylist(rows)


# Lake tables a model may read besides events: where a day's partition is, and its schema when
# the period has none yet (a view over no file cannot be created).
_SIDE_TABLES: dict[str, tuple[Callable[[date], str], Callable[[], pa.Schema]]] = {
    "quarantine": (quarantine_dir, lambda: QUARANTINE_SCHEMA),
    "ledger": (ledger_dir, lambda: ledger_schema(event_types())),
    "contracts": (contracts_dir, lambda: VIOLATIONS_SCHEMA),
}


def _register(con: duckdb.DuckDBPyConnection, lake: Lake, model: Model, first: date, last: date):
    types = event_types()
    days = days_between(first, last)
    # Every file of each partition: compaction may have split one into several.
    urls = {(t, d): lake.parquet_urls(events_dir(t, d)) for t in types for d in days}
    missing = [f"{d} ({t})" for (t, d), found in urls.items() if not found]
    if missing:
        raise FileNotFoundError(
            f"{model.name} for {first}..{last} needs every day ingested; missing: "
            f"{', '.join(missing[:10])}: materialise those ingest partitions first"
        )
    before = first - timedelta(days=1)  # a day's first events may belong to requests of the eve
    for t in types:
        eve = lake.parquet_urls(events_dir(t, before))
        period_urls = [url for d in days for url in urls[(t, d)]]
        read_events(con, [*eve, *period_urls]).create_view(t)
    con.execute(load_sql("rollups/user_links.sql"), {"period_start": first, "period_end": last})
    con.sql("select * from request").create_view("request_dims")
    con.from_arrow(_pii_fields()).create_view("pii_fields")
    for table in model.reads:
        if table in MODELS_BY_NAME:  # a daily rollup: a week or month needs each of its days
            daily = MODELS_BY_NAME[table]
            rels = [rollup_dir(daily.name, daily.grain, d) for d in days]
            found = {r: lake.parquet_urls(r) for r in rels}
            absent = [r for r, files in found.items() if not files]
            if absent:
                raise FileNotFoundError(
                    f"{model.name} for {first}..{last} is merged from {table} of every day; "
                    f"missing {len(absent)}, e.g. {absent[0]}: materialise {table} for those "
                    "days first"
                )
            daily_urls = [url for files in found.values() for url in files]
            con.read_parquet(daily_urls).create_view(f"period_{table}")
            continue
        path_of, schema = _SIDE_TABLES[table]
        side_urls = [url for d in days for url in lake.parquet_urls(path_of(d))]
        source = (
            # By name: a ledger written before a column was added (blank_lines) lacks it.
            con.read_parquet(side_urls, hive_partitioning=False, union_by_name=True)
            if side_urls
            else con.from_arrow(schema().empty_table())
        )
        source.create_view(f"period_{table}")


def build_rollup(
    lake: Lake, model: Model, start: date, settings: RollupSettings | None = None
) -> RollupResult:
    settings = settings or RollupSettings()
    started = time.monotonic()
    first, last = period(model.grain, start)
    # Never build on a half-published day: the period's days and the eve are read.
    recover_pending(lake, [first - timedelta(days=1), *days_between(first, last)])
    with lake_connection(lake, settings.memory_limit, settings.threads) as con:
        _register(con, lake, model, first, last)
        for prelude in model.prelude:
            con.execute(load_sql(f"rollups/{prelude}"))
        params: dict[str, Any] = {"period_start": first, "period_end": last}
        table = con.sql(load_sql(f"rollups/{model.sql}"), params=params).to_arrow_table()
        if model.finish is not None:
            table = model.finish(table, Job(lake, model, start, settings))
        rel = rollup_file(model.name, model.grain, first)
        rows, size = write_table(lake, rel, table)
        return RollupResult(model.name, first, last, rows, size, time.monotonic() - started, rel)
