"""The analysts' DuckDB catalog: views, access tiers, column comments."""
