"""The lake's upkeep: retention, compaction, S3 lifecycle."""
