"""Partner bundles: the monthly viewer-tier export and its manifest."""
