"""The sample telemetry generator (what the demo and the tests land)."""
