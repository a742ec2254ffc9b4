"""`syncd run` and `sync --once`: the loops that drive the pipeline."""
