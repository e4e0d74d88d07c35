"""Where a batch runs: on this machine (local) or on the workers of a Dask cluster (dask)."""
