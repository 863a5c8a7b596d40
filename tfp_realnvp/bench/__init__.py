"""Benchmarks anyone can rerun: `quality` (held-out NLL against the baselines a data
scientist reaches for first) and `speed` (training and serving throughput)."""
