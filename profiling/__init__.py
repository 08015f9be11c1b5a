"""Measuring compressed variants: datasets, models, memory/latency/accuracy profiling, the run store."""
