"""Render the contract pages under ``docs/contracts/`` from the code that enforces the contract.

Everything a page states that the code also states (fields, types, constraints, stored column
types, PII classes, reason codes, window sizes, path patterns) is rendered here from that code,
so ``python -m pipelines.docs --check`` (and ``tests/docs/test_docs.py``) fails as soon as the
two drift.
Only the prose is written in this module, as templates.

* ``events.md`` and ``partitioning.md`` are generated whole (``events.py``, ``partitioning.py``).
* ``pii_retention.md`` is written by hand; only the regions between
  ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` are generated (``pii_retention.py``).

``pages.py`` lists every page and checks or writes them; ``facts.py`` holds what several pages
read from the code.

The stored column types are not guessed: one empty partition per event type is pushed through the
real ingest SQL into a Parquet file and read back with DuckDB (``stored_tables.py``). No Dagster
here.
"""
