"""The lake itself: paths, local or s3:// storage, leases, the atomic publish, SQL loading,
configuration checks."""
