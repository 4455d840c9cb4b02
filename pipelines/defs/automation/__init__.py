"""Schedules, sensors, declarative automation, freshness and alerts."""
