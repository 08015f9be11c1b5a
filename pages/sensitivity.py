"""Sensitivity page: per-layer / per-head sensitivity map of a technique (drawing in dashboard/sensitivity.py)."""

from dashboard import sensitivity

sensitivity.render()
