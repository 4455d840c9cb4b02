"""The event contract: the schema registry, change classes, downgrades, the reference validator."""
