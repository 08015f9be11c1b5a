"""Shared test helpers: tiny model builders, toy data, fake runs and predictors (fixtures via tests/conftest.py)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
