"""Retention and compaction jobs."""
