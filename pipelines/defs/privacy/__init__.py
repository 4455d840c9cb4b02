"""Privacy operations: erasure requests and subject-access exports."""
