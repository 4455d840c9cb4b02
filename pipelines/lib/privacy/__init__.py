"""Privacy operations as plain functions: erasure and the subject-access export."""
