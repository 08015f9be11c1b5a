"""All of the dashboard's Streamlit caching: the run store handle and cached look-ups of static values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from profiling import paths

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> Any:
    from profiling.store.runs import RunStore

    return RunStore(Path(path))


def get_store() -> Any:
    """The shared RunStore for the current store path (keyed by path, so tests and env changes get their own)."""
    return _store_at(str(paths.store_path()))


@st.cache_resource(show_spinner=False)
def technique_registry() -> dict[str, Any]:
    """The technique registry with every technique module imported (the modules import torch lazily)."""
    import compression.techniques  # noqa: F401  (registers the techniques)
    from compression.registry import REGISTRY

    return REGISTRY


@st.cache_data(show_spinner=False)
def model_choices() -> dict[str, str]:
    """Model spec -> description (bundled defaults and random-weight architecture presets)."""
    from profiling.inputs.models import MODEL_CHOICES

    return dict(MODEL_CHOICES)


@st.cache_data(show_spinner=False)
def bundled_datasets() -> dict[str, str]:
    """Bundled dataset name -> description."""
    from profiling.inputs.datasets import BUNDLED

    return dict(BUNDLED)


@st.cache_data(show_spinner=False, max_entries=32)
def csv_columns(path: str, digest: str) -> list[str]:
    """Column names of an uploaded CSV (``digest`` keys the cache on the file content)."""
    from profiling.inputs.datasets import read_csv_columns

    return list(read_csv_columns(path))


@st.cache_data(show_spinner=False, max_entries=32)
def csv_summary(path: str, digest: str, text_column: str, label_column: str) -> dict[str, Any]:
    """Load an uploaded CSV as a labeled dataset (raises DatasetError) and summarise it for the page."""
    from profiling.inputs.datasets import load_dataset

    data = load_dataset({"kind": "csv", "path": path, "text_column": text_column, "label_column": label_column})
    return {
        "n_train": len(data.train_texts),
        "n_test": len(data.test_texts),
        "label_names": list(data.label_names),
        "note": data.note,
    }


@st.cache_data(show_spinner=False)
def presets() -> dict[str, list[dict[str, Any]]]:
    """Named variant lists from profiling.jobs.presets (``seed`` is the reference sequence)."""
    from profiling.jobs import presets as p
    out = {name: list(variants) for name, variants in getattr(p, "PRESETS", {}).items()}
    out.setdefault("seed", list(p.SEED))
    return out


# The measurement settings are described once, in profiling.settings (defaults, limits, labels and help per field).


def default_settings() -> dict[str, int]:
    """The default measurement settings (profiling.settings.DEFAULTS)."""
    from profiling.settings import DEFAULTS

    return DEFAULTS.to_dict()


def setting_limits() -> dict[str, tuple[int, int]]:
    """Allowed (min, max) per setting, as the runner validates them (the fields' metadata)."""
    from profiling.settings import Settings

    return Settings.limits()


def setting_help() -> dict[str, str]:
    """Help text per setting (the fields' metadata)."""
    from profiling.settings import Settings

    return Settings.help()


def setting_labels() -> dict[str, str]:
    """Widget label per setting (the fields' metadata)."""
    from profiling.settings import Settings

    return Settings.labels()
