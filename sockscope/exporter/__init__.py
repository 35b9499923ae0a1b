"""The Prometheus exporter: metrics built from snapshots and signals (metrics.py, pure),
collected on their own schedule in a background thread (runner.py)."""
