"""Ingest: landing reader, staging, the schema compiler, dedup, PII, ledger."""
