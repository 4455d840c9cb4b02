"""Why a line went to quarantine: the closed list of reason codes, in order of precedence."""

REASONS = (
    "line_too_large",
    "not_utf8",
    "malformed_json",
    "late_arrival",
    "future_timestamp",
    "unknown_event_type",
    "unknown_schema_version",
    "schema_violation",
    "pii_in_field",
    "conflicting_duplicate",
)
