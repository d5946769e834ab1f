"""Throughput benchmarks of the batched envs (run with pytest-benchmark; not part of the main test run)."""
