"""The lab: a small clinic built from network namespaces, used by `make demo`, tests and benchmarks."""
