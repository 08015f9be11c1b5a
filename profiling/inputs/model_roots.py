"""Which local model folders may be read: ``$COMPRESSION_MODEL_ROOTS`` (and read-only mode) restrict them to roots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from compression.errors import UserError
from profiling.store.runs import READ_ONLY_ENV, read_only

log = logging.getLogger(__name__)

MODEL_ROOTS_ENV = "COMPRESSION_MODEL_ROOTS"


class FolderNotAllowed(UserError):
    """A local model folder outside the allowed roots (the message names the roots)."""


def model_roots() -> list[Path] | None:
    """The allowed roots (resolved), or None when any folder is accepted.

    Rule: ``$COMPRESSION_MODEL_ROOTS`` set (os.pathsep-separated absolute folders) -> only folders under them;
    unset and read-only (a shared deployment) -> no local folder at all; unset otherwise -> any folder (a local,
    single-user app). Entries that are empty or not absolute are dropped with a warning: that never widens access.
    """
    raw = os.environ.get(MODEL_ROOTS_ENV)
    if raw is None or not raw.strip():
        return [] if read_only() else None
    roots: list[Path] = []
    for entry in raw.split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            log.warning("%s: ignoring %r, which is not an absolute folder", MODEL_ROOTS_ENV, entry)
            continue
        roots.append(path.resolve())
    return roots


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def describe_roots(roots: list[Path] | None = None) -> str:
    """A sentence naming what is accepted, for help texts and refusals."""
    roots = model_roots() if roots is None else roots
    if not roots:
        why = f"{MODEL_ROOTS_ENV} names no absolute folder"
        if read_only() and not os.environ.get(MODEL_ROOTS_ENV, "").strip():
            why = f"{READ_ONLY_ENV} is set and {MODEL_ROOTS_ENV} is not"
        return f"local model folders are switched off here ({why})"
    return "only folders under " + ", ".join(str(r) for r in roots) + f" are accepted ({MODEL_ROOTS_ENV})"


def allowed_folder(folder: str | Path) -> Path:
    """The folder resolved (symlinks and ``..`` followed), or FolderNotAllowed when it lies outside the roots.

    Checked before anything else looks at the folder, so a refused path reveals nothing about what is there;
    files inside the folder that are links must point under a root too (see ``check_files``)."""
    path = Path(folder).expanduser().resolve()
    roots = model_roots()
    if roots is None or _within(path, roots):
        return path
    raise FolderNotAllowed(f"the model folder {folder} is not allowed: {describe_roots(roots)}")


def check_files(folder: Path) -> None:
    """Refuse a folder under a root whose files link outside every root (e.g. config.json -> /etc/...)."""
    roots = model_roots()
    if roots is None:
        return
    for entry in folder.iterdir():
        if entry.is_symlink() and not _within(entry.resolve(), roots):
            raise FolderNotAllowed(f"{entry} links outside the allowed roots: {describe_roots(roots)}")
