"""Benchmarks (`make bench`): each bench/bench_<area>.py exposes run() -> rows of (metric, value, target)."""
