"""Data and images, all of it untrusted: the benchmark's rows (dataset, Parquet/Arrow shards, safe archive
extraction, hub downloads), the edited images a user names, decoding with a pixel cap, names and paths that stay
inside their folders, capped JSON reading, and the content-addressed cache every stage shares."""
