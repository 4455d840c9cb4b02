"""Run one day's contracts: the cross-event SQL rules over D-1..D+1, the schema-derived GX suites
over D, the timeliness shares; write every violation and every rate. Contracts observe: nothing
under events/ is changed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lib.contracts.rules import (
    CHAIN_TYPES,
    COMPLETENESS,
    CONSISTENCY,
    CONSISTENCY_RULES,
    FAMILIES,
    LANDED_IN_WINDOW,
    RULES,
    TIMELINESS,
    VALIDITY,
)
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.ingest.landing import READS_DAYS_AFTER
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.ingest.quarantine import QUARANTINE_SCHEMA
from pipelines.lib.lake.paths import contracts_file, events_dir, quality_file
from pipelines.lib.lake.publish import recover_pending
from pipelines.lib.lake.sql import lake_connection, load_sql
from pipelines.lib.lake.storage import Lake, write_table
from pipelines.lib.schemas.registry import event_types

if TYPE_CHECKING:
    # Only for annotations: gx_suites imports Great Expectations (slow), see run_contracts.
    from pipelines.lib.contracts.gx_suites import SuiteOutcome

# Timeliness shares shown beside the gate (landed_in_window), never gated: name -> latest lag.
REPORTED_TIMELINESS = {"landed_on_date": 0, "landed_by_t1": 1}

VIOLATIONS_SCHEMA = pa.schema(
    [
        ("event_date", pa.date32()),
        ("family", pa.string()),
        ("rule", pa.string()),
        ("event_type", pa.string()),
        ("event_id", pa.string()),
        ("request_id", pa.string()),
        ("detail", pa.string()),
    ]
)

QUALITY_SCHEMA = pa.schema(
    [
        ("event_date", pa.date32()),
        ("family", pa.string()),
        ("rule", pa.string()),  # the family's own name on its summary row
        ("scope", pa.string()),  # family | rule | reported (a rate shown, never gated)
        ("checked", pa.int64()),
        ("failed", pa.int64()),
        ("rate", pa.float64()),
    ]
)


@dataclass
class ContractsResult:
    day: date
    rates: dict[str, dict[str, Any]]  # family -> checked, failed, rate
    quality: list[dict[str, Any]]
    violations: int
    neighbours: dict[str, bool]  # previous_day / next_day: ingested?
    pending_next_day: int  # partners not found while D+1 is not ingested: they may still come
    data_docs: str | None = None
    seconds: float = 0.0
    bytes_written: dict[str, int] = field(default_factory=dict)


def _day_paths(lake: Lake, event_type: str, day: date) -> list[str] | None:
    """Every file of the type's partition for ``day`` (compaction may split it), or None."""
    return lake.parquet_urls(events_dir(event_type, day)) or None


def _later_quarantine(lake: Lake, day: date) -> list[str]:
    """Quarantine files of the partitions after the window: where D's late lines end up."""
    first = f"event_date={(day + timedelta(days=READS_DAYS_AFTER + 1)).isoformat()}"
    files = lake.glob_urls("quarantine/event_date=*/*.parquet")
    return [url for url in files if url.rsplit("/", 2)[-2] >= first]


def _neighbour_urls(lake: Lake, day: date) -> dict[str, dict[str, list[str]]]:
    """previous_day / next_day -> the chain types' event files for that day (types with any)."""
    days = {"previous_day": day - timedelta(days=1), "next_day": day + timedelta(days=1)}
    return {
        label: {t: url for t in CHAIN_TYPES if (url := _day_paths(lake, t, other))}
        for label, other in days.items()
    }


def _ingested(found: dict[str, dict[str, list[str]]]) -> dict[str, bool]:
    return {label: len(urls) == len(CHAIN_TYPES) for label, urls in found.items()}


def neighbours_ingested(lake: Lake, day: date) -> dict[str, bool]:
    """Whether every chain type of D-1 and of D+1 is ingested (the joins look there)."""
    return _ingested(_neighbour_urls(lake, day))


def _register_inputs(
    con: duckdb.DuckDBPyConnection, lake: Lake, day: date
) -> tuple[dict[str, bool], dict[str, list[str]]]:
    types = event_types()
    own = {t: _day_paths(lake, t, day) for t in types}
    missing = [t for t, url in own.items() if url is None]
    if missing:
        raise FileNotFoundError(
            f"no events for {day} ({', '.join(missing)}): materialise the ingest partition first"
        )
    found = _neighbour_urls(lake, day)
    neighbours = _ingested(found)
    urls = {t: [*own[t], *[url for f in found.values() for url in f.get(t, [])]] for t in types}
    for t in CHAIN_TYPES:
        read_events(con, urls[t]).create_view(t)
    day_urls = [url for files in own.values() for url in files]
    con.read_parquet(day_urls, hive_partitioning=True, union_by_name=True).create_view("day_events")
    later = _later_quarantine(lake, day)
    source = (
        con.read_parquet(later, hive_partitioning=False)
        if later
        else con.from_arrow(QUARANTINE_SCHEMA.empty_table())
    )
    source.create_view("later_quarantine")
    return neighbours, own


def _with_family(table: pa.Table, family: str, day: date) -> pa.Table:
    n = table.num_rows
    columns = {
        "event_date": pa.repeat(pa.scalar(day, pa.date32()), n),
        "family": pa.repeat(pa.scalar(family, pa.string()), n),
        **{
            name: table[name] for name in ("rule", "event_type", "event_id", "request_id", "detail")
        },
    }
    return pa.table(columns).cast(VIOLATIONS_SCHEMA)


def _failed_events(violations: pa.Table) -> int:
    """Distinct events with at least one violation (an event without an id counts once per row)."""
    if violations.num_rows == 0:
        return 0
    keyed = pc.binary_join_element_wise(violations["event_type"], violations["event_id"], "/")
    return (
        pc.count_distinct(keyed, mode="only_valid").as_py()
        + pc.sum(pc.is_null(violations["event_id"])).as_py()
    )


def _row(family: str, rule: str, scope: str, checked: int, failed: int) -> dict[str, Any]:
    rate = 1.0 if checked == 0 else (checked - failed) / checked
    return {
        "family": family,
        "rule": rule,
        "scope": scope,
        "checked": checked,
        "failed": failed,
        "rate": rate,
    }


def _timeliness(con: duckdb.DuckDBPyConnection, day: date) -> tuple[pa.Table, list[dict]]:
    params = {"day": day}
    late = con.sql(load_sql("contracts/late_lines.sql"), params=params).to_arrow_table()
    lags = con.sql(load_sql("contracts/landing_lag.sql"), params=params).fetchall()
    total = sum(n for _, _, n in lags)
    rows = [
        _row(TIMELINESS, name, "reported", total, sum(n for _, lag, n in lags if lag > latest))
        for name, latest in REPORTED_TIMELINESS.items()
    ]
    late_total = sum(n for _, lag, n in lags if lag > READS_DAYS_AFTER)
    rows.append(_row(TIMELINESS, LANDED_IN_WINDOW.name, "rule", total, late_total))
    return late, rows


def run_contracts(
    lake: Lake,
    day: date,
    thresholds: Thresholds,
    *,
    memory_limit: str = "2GB",
    threads: int = 2,
    data_docs: bool = True,
) -> ContractsResult:
    started = time.monotonic()
    # Never build on a half-published day: D-1 .. D+1 and the later quarantine are read.
    recover_pending(lake)
    with lake_connection(lake, memory_limit, threads) as con:
        neighbours, own_urls = _register_inputs(con, lake, day)
        day_counts = dict(
            con.sql("select event_type, count(*) from day_events group by all").fetchall()
        )
        consistency = con.sql(
            load_sql("contracts/consistency.sql"),
            params={"day": day, "clock_skew_ms": thresholds.clock_skew_ms},
        ).to_arrow_table()
        # Imported here: Great Expectations takes about 3 s to import, and every process that
        # loads the code location (CLI, webserver, each run's step server) would pay it.
        from pipelines.lib.contracts import gx_suites

        suites = gx_suites.validate_day(
            lake, day, own_urls, data_docs=data_docs, memory_limit=memory_limit, threads=threads
        )
        late, timeliness_rows = _timeliness(con, day)
        parts = _violation_parts(day, consistency, late, suites)
        quality = _quality_rows(day_counts, consistency, parts, suites, timeliness_rows)
        violations = pa.concat_tables(parts.values())
        written = _write_day(lake, day, consistency, violations, quality)
        # Only a partner not found can still turn up in D+1; "2 rankings" cannot resolve.
        pending = (
            0 if neighbours["next_day"] else pc.sum(consistency["partner_missing"]).as_py() or 0
        )
        return ContractsResult(
            day=day,
            rates={q["family"]: q for q in quality if q["scope"] == "family"},
            quality=quality,
            violations=violations.num_rows,
            neighbours=neighbours,
            pending_next_day=pending,
            data_docs=suites.data_docs,
            seconds=time.monotonic() - started,
            bytes_written=written,
        )


def _violation_parts(
    day: date, consistency: pa.Table, late: pa.Table, suites: SuiteOutcome
) -> dict[str, pa.Table]:
    """Each family's violations, in the contracts table's shape."""
    return {
        CONSISTENCY: _with_family(consistency, CONSISTENCY, day),
        TIMELINESS: _with_family(late, TIMELINESS, day),
        COMPLETENESS: suites.violations(COMPLETENESS, day, VIOLATIONS_SCHEMA),
        VALIDITY: suites.violations(VALIDITY, day, VIOLATIONS_SCHEMA),
    }


def _quality_rows(
    day_counts: dict[str, int],
    consistency: pa.Table,
    parts: dict[str, pa.Table],
    suites: SuiteOutcome,
    timeliness_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One rate per family, then per consistency rule, per GX expectation, per timeliness share.
    A consistency rule is judged over the events of the types it reads, not the whole day."""
    all_checked = sum(day_counts.values())
    checked = {
        COMPLETENESS: all_checked,
        CONSISTENCY: sum(day_counts.get(t, 0) for t in CHAIN_TYPES),
        VALIDITY: all_checked,
        TIMELINESS: timeliness_rows[-1]["checked"],
    }
    quality = [_row(f, f, "family", checked[f], _failed_events(parts[f])) for f in FAMILIES]
    by_rule = {
        r["rule"]: r["event_id_count_distinct"]
        for r in consistency.group_by("rule")
        .aggregate([("event_id", "count_distinct")])
        .to_pylist()
    }
    for rule in CONSISTENCY_RULES:
        judged = sum(day_counts.get(t, 0) for t in rule.event_types)
        quality.append(_row(CONSISTENCY, rule.name, "rule", judged, by_rule.get(rule.name, 0)))
    quality += [
        _row(s.family, s.rule, "rule" if s.gated else "reported", n, bad)
        for s, n, bad in suites.counts
    ]
    return quality + timeliness_rows


def _write_day(
    lake: Lake,
    day: date,
    consistency: pa.Table,
    violations: pa.Table,
    quality: list[dict[str, Any]],
) -> dict[str, int]:
    """Publish the day's violations and rates, bytes written per table. A rule consistency.sql
    made up is refused before anything is written."""
    unknown = set(pc.unique(consistency["rule"]).to_pylist()) - RULES.keys()
    if unknown:
        raise ValueError(f"consistency.sql emitted rules not declared in rules.py: {unknown}")
    written = {}
    _, written["contracts"] = write_table(lake, contracts_file(day), violations)
    quality_table = pa.Table.from_pylist(
        [{"event_date": day, **q} for q in quality], schema=QUALITY_SCHEMA
    )
    _, written["quality"] = write_table(lake, quality_file(day), quality_table)
    return written
