"""Test-wide settings: offline Hub, quiet tokenizers, a fresh run store per test session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Fixtures shared across test folders (tiny models, toy CSVs, an isolated engine environment).
pytest_plugins = ["tests.helpers.tiny_models", "tests.helpers.engine"]
