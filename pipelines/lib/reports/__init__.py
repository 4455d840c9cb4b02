"""Operational reports (daily and weekly): numbers from the rollups, SLO status, a health score,
recommendations, rendered as Markdown and self-contained HTML with inline SVG charts (no Dagster
import)."""
