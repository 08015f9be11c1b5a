"""Shared test helpers: tiny model builders, toy data, fake runs and predictors (fixtures via tests/conftest.py)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A valid safetensors file holding no tensors (8 bytes of header length, the JSON header "{}" padded with spaces):
# passes the folder checks' header check where a test needs weights that are never loaded.
EMPTY_SAFETENSORS = (8).to_bytes(8, "little") + b"{}      "
