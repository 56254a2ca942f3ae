"""Metrics for the vendor's Prometheus: the /metrics exposition of the box's state (docs/fleet-metrics.md)."""
