"""Where built models, downloaded data, artifacts and the run store live (a git-ignored data folder)."""

from __future__ import annotations

import os
from pathlib import Path

from compression.errors import write_failure

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``$COMPRESSION_DATA_DIR`` or ``<repo>/data``; created on first use."""
    path = Path(os.environ.get("COMPRESSION_DATA_DIR", REPO_ROOT / "data")).expanduser()
    _mkdir(path, "the data folder")
    return path


def store_path() -> Path:
    """The SQLite run store: ``$COMPRESSION_STORE`` or ``<data>/runs.sqlite``."""
    env = os.environ.get("COMPRESSION_STORE")
    return Path(env).expanduser() if env else data_dir() / "runs.sqlite"


def models_dir() -> Path:
    """Built base models (default classifiers, presets, copies of Hub/local models)."""
    return _sub("models")


def artifacts_dir() -> Path:
    """Cached compressed artifacts, keyed by base model and technique chain."""
    return _sub("artifacts")


def downloads_dir() -> Path:
    """Raw files fetched from package registries (dataset archives)."""
    return _sub("downloads")


def _sub(name: str) -> Path:
    path = data_dir() / name
    _mkdir(path, f"the folder {name}")
    return path


def _mkdir(path: Path, what: str) -> None:
    """Create ``path`` if missing; a full, read-only or forbidden disk is named (DiskWriteError), not a bare OSError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        disk = write_failure(exc, what, path.parent)
        if disk is not None:
            raise disk from exc
        raise
