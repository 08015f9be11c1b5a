"""Measuring one artifact in its own process: the child, its RAM monitor, latency protocols, workloads and statistics."""
