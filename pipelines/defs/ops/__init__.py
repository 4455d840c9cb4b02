"""Operations: schedules, the landing sensor, freshness, retention and compaction."""
