"""Run the day's schema-derived expectation suites with Great Expectations 1.x, through GX's SQL
path on DuckDB (no day loaded into pandas), and build the Data Docs site.

Two shims make GX's SQL path work on DuckDB, both on public APIs:

* GX closes its SQLAlchemy connection before it fetches a query's rows; the rollback that
  follows clears the one pending result a DuckDB connection holds, so every metric came back
  empty ("list index out of range"). ``_IsolatedCursorConnection`` gives each SQLAlchemy cursor
  its own DuckDB cursor, so a rollback cannot discard an unread result.
* GX 1.24 has no regex for the duckdb dialect; ``ExpectColumnValuesToMatchRegexDuckDB`` is the
  stock expectation on a metric that uses DuckDB's ``regexp_matches`` (a search, as JSON Schema's
  ``pattern`` is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import duckdb_engine
import great_expectations as gx
import great_expectations.expectations as gxe
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.metrics import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from pipelines.lib.contracts.expectations import ExpectationSpec, expectation_specs
from pipelines.lib.ingest.partition import read_events
from pipelines.lib.lake.paths import DATA_DOCS_DIR
from pipelines.lib.lake.sql import lake_connection
from pipelines.lib.lake.storage import Lake
from pipelines.lib.schemas.registry import load_event_schemas

KEY_COLUMNS = ["event_id", "request_id"]
_SITE = "lake"


class _IsolatedCursorConnection(duckdb_engine.ConnectionWrapper):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(con)
        self._raw = con

    def cursor(self) -> duckdb_engine.CursorWrapper:
        return duckdb_engine.CursorWrapper(self._raw.cursor(), self)


class ColumnValuesMatchRegexDuckDB(ColumnMapMetricProvider):
    condition_metric_name = "column_values.match_regex_duckdb"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, regex, **kwargs):
        return sa.func.regexp_matches(column, regex)


class ExpectColumnValuesToMatchRegexDuckDB(gxe.ExpectColumnValuesToMatchRegex):
    """ExpectColumnValuesToMatchRegex on DuckDB: same arguments, same Data Docs rendering."""

    map_metric = "column_values.match_regex_duckdb"


EXPECTATION_CLASSES: dict[str, type[gxe.Expectation]] = {
    "not_null": gxe.ExpectColumnValuesToNotBeNull,
    "present": gxe.ExpectColumnValuesToNotBeNull,
    "pattern": ExpectColumnValuesToMatchRegexDuckDB,
    "in_set": gxe.ExpectColumnValuesToBeInSet,
    "between": gxe.ExpectColumnValuesToBeBetween,
    "length": gxe.ExpectColumnValueLengthsToBeBetween,
}


def _expectation(spec: ExpectationSpec) -> gxe.Expectation:
    # A reported rate never fails: mostly=0 keeps the missing count without a verdict.
    extra = {"mostly": 0.0} if not spec.gated else {}
    meta = {"rule": spec.rule, "family": spec.family}
    return EXPECTATION_CLASSES[spec.kind](column=spec.column, meta=meta, **spec.kwargs, **extra)


@dataclass
class SuiteOutcome:
    counts: list[tuple[ExpectationSpec, int, int]]  # spec, rows checked, rows unexpected
    offenders: dict[str, pa.Table] = field(default_factory=dict)  # rule -> keys and detail
    data_docs: str | None = None

    def violations(self, family: str, day: date, schema: pa.Schema) -> pa.Table:
        tables = [
            pa.table(
                {
                    "event_date": pa.repeat(pa.scalar(day, pa.date32()), t.num_rows),
                    "family": pa.repeat(pa.scalar(family, pa.string()), t.num_rows),
                    "rule": pa.repeat(pa.scalar(spec.rule, pa.string()), t.num_rows),
                    "event_type": pa.repeat(pa.scalar(spec.event_type, pa.string()), t.num_rows),
                    "event_id": t["event_id"],
                    "request_id": t["request_id"],
                    "detail": t["detail"],
                }
            ).cast(schema)
            for spec, _, _ in self.counts
            if spec.family == family and (t := self.offenders.get(spec.rule)) is not None
        ]
        return pa.concat_tables(tables) if tables else schema.empty_table()


def _offenders(raw: duckdb.DuckDBPyConnection, query: str, spec: ExpectationSpec) -> pa.Table:
    """Every offending row's keys, by the query GX itself reports for the expectation (it selects
    the key columns and the column checked, in that order)."""
    found = raw.sql(query).to_arrow_table()
    value = pc.coalesce(pc.cast(found.column(2), pa.string()), pa.scalar("null"))
    return pa.table(
        {
            "event_id": pc.cast(found.column(0), pa.string()),
            "request_id": pc.cast(found.column(1), pa.string()),
            "detail": pc.binary_join_element_wise(f"{spec.column} = ", value, ""),
        }
    )


def _context(docs_dir: str | None):
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir:
        context.add_data_docs_site(
            site_name=_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": docs_dir,
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def validate_day(
    lake: Lake,
    day: date,
    own_urls: dict[str, list[str]],
    *,
    data_docs: bool = True,
    memory_limit: str = "2GB",
    threads: int = 2,
) -> SuiteOutcome:
    """Validate each event type's files of ``day`` (``own_urls``: type -> its partition's file
    URLs) against its suite; publish the Data Docs site to ``reports/data_docs/`` when asked."""
    with lake_connection(lake, memory_limit, threads) as raw:
        schemas = load_event_schemas()
        for event_type, urls in own_urls.items():
            # Only the contract's columns: the lineage columns are ingest's, not the producer's.
            # A partition written before the current schema version reads newer fields as null.
            read_events(raw, urls, event_type).select(*schemas[event_type].properties).create_view(
                event_type
            )

        with lake.private_dir() as scratch:
            docs_dir = os.path.join(scratch, "data_docs") if data_docs else None
            context = _context(docs_dir)
            source = context.data_sources.add_sql(
                name="lake",
                connection_string="duckdb:///:memory:",
                kwargs={"creator": lambda: _IsolatedCursorConnection(raw)},
            )
            specs: dict[str, ExpectationSpec] = {}
            definitions = []
            for event_type in own_urls:
                suite = gx.ExpectationSuite(name=f"{event_type}_{day.isoformat()}")
                for spec in expectation_specs(schemas[event_type], day):
                    specs[spec.rule] = spec
                    suite.add_expectation(_expectation(spec))
                batch = source.add_table_asset(
                    name=event_type, table_name=event_type
                ).add_batch_definition_whole_table("day")
                definitions.append(
                    context.validation_definitions.add(
                        gx.ValidationDefinition(
                            name=event_type, data=batch, suite=context.suites.add(suite)
                        )
                    )
                )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"contracts_{day.isoformat()}",
                    validation_definitions=definitions,
                    actions=[UpdateDataDocsAction(name="data_docs", site_names=[_SITE])]
                    if docs_dir
                    else [],
                    result_format={
                        "result_format": "COMPLETE",
                        "unexpected_index_column_names": KEY_COLUMNS,
                        "partial_unexpected_count": 0,
                    },
                )
            )
            outcome = SuiteOutcome(counts=[])
            for run in checkpoint.run().run_results.values():
                for result in run.results:
                    spec = specs[result.expectation_config.meta["rule"]]
                    if result.exception_info.get("raised_exception"):
                        raise RuntimeError(
                            f"GX expectation {spec.rule} failed to run: "
                            f"{result.exception_info.get('exception_message')}"
                        )
                    details: dict[str, Any] = result.result
                    unexpected = details.get("unexpected_count") or 0
                    outcome.counts.append((spec, details["element_count"], unexpected))
                    if unexpected and spec.gated:
                        outcome.offenders[spec.rule] = _offenders(
                            raw, details["unexpected_index_query"], spec
                        )
            source.get_execution_engine().close()
            if docs_dir:
                lake.publish_dir(docs_dir, DATA_DOCS_DIR)
                outcome.data_docs = lake.url(f"{DATA_DOCS_DIR}/index.html")
        return outcome
