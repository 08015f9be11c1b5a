"""Stand-ins for the default-classifier build in a test data folder: mark parts built, write a status file."""

from __future__ import annotations

import json
import time
from pathlib import Path


def mark_built(data: Path, names: tuple[str, ...] = ("movie-reviews", "tweets"), datasets: bool = True) -> None:
    """Make ``data`` look as if the given default classifiers (and their datasets) were built: the files
    readiness() checks, with no weights (only for pages that never load them)."""
    from profiling.jobs.defaults_build import DATASET_FILES

    for name in names:
        model = data / "models" / f"default-{name}"
        model.mkdir(parents=True, exist_ok=True)
        (model / "artifact.json").write_text(json.dumps({"format": "hf", "meta": {}}))
        if datasets:
            (data / "downloads").mkdir(parents=True, exist_ok=True)
            (data / "downloads" / DATASET_FILES[name]).write_bytes(b"placeholder")


def write_status(data: Path, **fields) -> dict:
    """Write ``setup-status.json`` into ``data`` as a build would."""
    status = {"started_at": time.time() - 30, "pid": None, "log": [], **fields}
    (data / "setup-status.json").write_text(json.dumps(status))
    return status
