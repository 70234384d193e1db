"""Benchmarks for issue #8: overhead, persistence throughput, scaling and memory."""
