"""Standard GAN benchmarks: datasets with known modes and their metrics."""
