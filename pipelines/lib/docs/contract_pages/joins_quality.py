"""Render docs/contracts/joins.md and quality.md from the rules, the schema-derived expectations,
the default thresholds and the output schemas, so the pages cannot drift from what runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

from pipelines.lib.contracts.expectations import KINDS, expectation_specs
from pipelines.lib.contracts.rules import (
    CHAIN_TYPES,
    COMPLETENESS,
    CONSISTENCY,
    CONSISTENCY_RULES,
    LANDED_IN_WINDOW,
    TIMELINESS,
    VALIDITY,
)
from pipelines.lib.contracts.run import QUALITY_SCHEMA, REPORTED_TIMELINESS, VIOLATIONS_SCHEMA
from pipelines.lib.contracts.verdict import Thresholds
from pipelines.lib.docs import markdown as md
from pipelines.lib.ingest.landing import READS_DAYS_AFTER
from pipelines.lib.lake.paths import DATA_DOCS_DIR, contracts_file, quality_file
from pipelines.lib.schemas.registry import EventSchema

JOINS_PAGE = "contracts/joins.md"
QUALITY_PAGE = "contracts/quality.md"
_D = date(1, 2, 3)  # rendered as the placeholder D


def _path(path_of) -> str:
    return md.code(path_of(_D).replace(_D.isoformat(), "D"))


def _fields(schema) -> str:
    return ", ".join(md.code(f.name) for f in schema)


_JOINS = """\
# Join contracts

{note}

Events of one request are joined on the canonical keys `request_id` (a UUID v4 the service
mints per request), the keyed hash of `user_id` and `timestamp_ms`. The chain is
{chain}:

| from | to | cardinality |
|---|---|---|
| request | ranking | 1:1 |
| ranking | impression | 1:many |
| impression | click | 0:1 per (`request_id`, `canonical_id`, `engagement_type`) |

## Rules

Each rule judges the events of day D only; a violation is one row naming the event.
The SQL is `sql/contracts/consistency.sql`: one query for the family, no Python loop over rows.

{rules}

Partners are a `request_id`'s first request, its first ranking, and an item's first impression
(by `timestamp_ms`). `clock_skew_ms` defaults to {skew} ms and is set on the `contracts` resource.

## Near midnight

The rules read the events of D-1, D and D+1 (those ingested), so an event whose partner lies
across midnight is not flagged. When D+1 is not ingested yet, the contracts asset says so in its
metadata (`next_day_ingested: false`) and counts, as `pending_next_day`, the violations that are
a partner not found (marked in the table above): D+1 may still hold it. A violation the next day
cannot mend (say, a request with two rankings) is not pending. Run the contracts of D again once
D+1 is in.

## Where violations go

{violations_path}, one row per violation: {violation_fields}. Contracts observe: an orphan
stays in `events/`, it is reported here, never deleted. `quality.md` says how the rates are
computed and gated.
"""

_QUALITY = """\
# Data-quality families and gates

{note}

Every family is a rate per partition (day D): the share of the events it judges that break none
of its gated rules. The four families are four blocking asset checks on the `contracts` asset,
named after them.

{families}

## Gates

| rate | check | severity | the day's rollups |
|---|---|---|---|
| below `error_below` = {error_below} | fails | ERROR (blocking) | do not build in that run |
| from {error_below} to below `warn_below` = {warn_below} | fails | WARN | build |
| {warn_below} or more | passes | | build |

The thresholds (and `clock_skew_ms`) are one config section: the `contracts` resource, set in
Dagster's launchpad or in the definitions; a run refuses to start with `error_below` above
`warn_below`. Optional fields' presence and the on-date and T+1 shares are reported in the
quality table and the check metadata, never gated. Check metadata carries the rate, the counts,
every rule's counts and up to 20 offending keys.

## Timeliness

A day's events land on their own date, or later; ingest keeps those that land by T+{window} and
quarantines later ones as `late_arrival` in the partition of their arrival date, where the
timeliness rule finds them. Reported shares: {reported}; gated: `{landed}`.

## Single-table rules (Great Expectations)

One expectation suite per event type, built for the day from its JSON Schema, runs through GX's
SQL path on DuckDB over the day's Parquet (nothing is loaded into pandas). The Data Docs site of
the latest run is written to `{data_docs}/index.html` and linked from the check metadata.

{kinds}

{suites}

## Tables

- {violations_path}: one row per violation ({violation_fields}).
- {quality_path}: one row per family, rule and reported rate ({quality_fields}).
"""


def render_joins() -> str:
    rules = md.table(
        ["rule", "judges", "asserts", "a missing partner may be in D+1"],
        [
            [
                md.code(r.name),
                ", ".join(r.event_types),
                r.text,
                "yes" if r.partner_may_be_next_day else "",
            ]
            for r in CONSISTENCY_RULES
        ],
    )
    text = _JOINS.format(
        note=md.generated_note("`pipelines/lib/contracts/rules.py` and the contract defaults"),
        chain=" -> ".join(CHAIN_TYPES),
        rules=rules,
        skew=Thresholds().clock_skew_ms,
        violations_path=_path(contracts_file),
        violation_fields=_fields(VIOLATIONS_SCHEMA),
    )
    return text.rstrip("\n") + "\n"


def _suite(schema: EventSchema) -> str:
    rows = [
        [
            md.code(s.column),
            s.family,
            s.kind,
            s.note or ", ".join(f"{k} {md.code(json.dumps(v))}" for k, v in s.kwargs.items()),
            "yes" if s.gated else "reported",
        ]
        for s in expectation_specs(schema, _D)
    ]
    return f"### `{schema.event_type}`\n\n" + md.table(
        ["column", "family", "kind", "arguments", "gated"], rows
    )


def _families() -> str:
    chain = ", ".join(CHAIN_TYPES)
    rows = [
        [COMPLETENESS, "every event of D", "the event schemas (GX suites)", "required fields"],
        [
            CONSISTENCY,
            f"the {chain} events of D",
            "`sql/contracts/consistency.sql` ([joins](joins.md))",
            "join and agreement rules",
        ],
        [VALIDITY, "every event of D", "the event schemas (GX suites)", "valid values"],
        [
            TIMELINESS,
            "every event of D and D's lines quarantined as `late_arrival`",
            "`sql/contracts/landing_lag.sql`, `sql/contracts/late_lines.sql`",
            f"landed by T+{READS_DAYS_AFTER}",
        ],
    ]
    return md.table(
        ["family", "judges", "rules from", "the rate counts events that hold"],
        [[md.code(r[0]), *r[1:]] for r in rows],
    )


def render_quality(schemas: Mapping[str, EventSchema]) -> str:
    defaults = Thresholds()
    text = _QUALITY.format(
        note=md.generated_note(
            "the event schemas, `pipelines/lib/contracts/` and the contract defaults"
        ),
        families=_families(),
        window=READS_DAYS_AFTER,
        error_below=defaults.error_below,
        warn_below=defaults.warn_below,
        reported=", ".join(md.code(name) for name in REPORTED_TIMELINESS),
        landed=LANDED_IN_WINDOW.name,
        data_docs=DATA_DOCS_DIR,
        kinds=md.table(
            ["kind", "GX expectation", "from"],
            [[md.code(kind), gx, source] for kind, (gx, source) in KINDS.items()],
        ),
        suites="\n\n".join(_suite(s) for s in schemas.values()),
        violations_path=_path(contracts_file),
        violation_fields=_fields(VIOLATIONS_SCHEMA),
        quality_path=_path(quality_file),
        quality_fields=_fields(QUALITY_SCHEMA),
    )
    return text.rstrip("\n") + "\n"
