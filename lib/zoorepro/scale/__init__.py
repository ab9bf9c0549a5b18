"""Beyond one process: a Dask cluster (``cluster``), a grid of runs (``matrix``) and one run in
shards (``shards``).  Only the CLI imports this package."""
