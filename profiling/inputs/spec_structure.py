"""What the Run page knows of a model spec's architecture before it is built (for refusals shown up front)."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def spec_meta(spec: str | None) -> dict[str, Any] | None:
    """``{"model_type", "structure"?}`` of a local folder spec, or None (a Hub id is unknown before download)."""
    spec = (spec or "").strip()
    if not spec:
        return None
    if spec == "default" or spec.startswith(("default:", "preset:")):
        return None  # bundled and preset shapes (BERT, RoBERTa) take every technique; no torch import in the page
    packaged = _packaged_config(spec)
    if packaged is not None:
        return _folder_meta(str(packaged.resolve()), packaged.stat().st_mtime_ns)
    from profiling.inputs.packaged_encoders import ENCODERS

    if spec.partition(":")[0] in ENCODERS:  # not unpacked yet: the architecture's default config tells the same
        from compression.structure import summary_for_type

        model_type = ENCODERS[spec.partition(":")[0]].model_type
        return {"model_type": model_type, "structure": summary_for_type(model_type)}
    folder = spec.removeprefix("path:").strip()
    if spec.startswith("path:") or folder.startswith(("/", "./", "../", "~")):
        config = _config_file(Path(folder).expanduser())
        try:
            return _folder_meta(str(config.resolve()), config.stat().st_mtime_ns)
        except OSError:
            return None
    return None


def _config_file(folder: Path) -> Path:
    """config.json of a model folder, or of the transformer a sentence-transformers folder names."""
    from profiling.inputs.models import ModelError, encoder_folder

    try:
        return encoder_folder(folder) / "config.json"
    except ModelError:
        return folder / "config.json"


def _packaged_config(spec: str) -> Path | None:
    """config.json of the encoder behind a packaged-encoder spec (``mpnet:tweets``), once it is unpacked here."""
    from profiling import paths
    from profiling.inputs.packaged_encoders import ENCODERS

    encoder = ENCODERS.get(spec.partition(":")[0])
    if encoder is None:
        return None
    config = paths.data_dir() / "encoders" / encoder.folder / "config.json"
    return config if config.is_file() else None


def spec_format(spec: str | None) -> str:
    """The format the original model of ``spec`` will have: "onnx" for a local folder holding an ONNX classifier
    (profiling.inputs.onnx_folder), else "hf" (decided from file names alone: nothing is loaded)."""
    from profiling.inputs.onnx_folder import is_onnx_folder

    spec = (spec or "").strip()
    folder = spec.removeprefix("path:").strip()
    if spec.startswith("path:") or folder.startswith(("/", "./", "../", "~")):
        try:
            return "onnx" if is_onnx_folder(Path(folder).expanduser()) else "hf"
        except OSError:
            return "hf"
    return "hf"


@functools.lru_cache(maxsize=16)
def _folder_meta(config_file: str, _mtime: int) -> dict[str, Any] | None:
    """The folder's model type and its structure, found on the meta device (no weights read)."""
    try:
        model_type = json.loads(Path(config_file).read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(model_type, str):
        return None
    try:
        from compression.meta_model import meta_classifier
        from compression.structure import find

        return {"model_type": model_type, "structure": find(meta_classifier(Path(config_file).parent)).summary()}
    except Exception as exc:  # noqa: BLE001 - any failure here only means "decided when the run loads it"
        log.info("structure of %s not found up front: %s", config_file, exc)
        return {"model_type": model_type}


def spec_parameters(spec: str | None) -> int | None:
    """The parameter count of the original model ``spec`` names, known before it is built (a preset's or a local
    folder's config on the meta device, an ONNX graph's initializers, the default's MiniLM), or None (a Hub id)."""
    spec = (spec or "").strip()
    try:
        if spec == "default" or spec.startswith("default:"):
            from profiling.inputs.model_files import minilm_dir

            return _config_parameters(str(minilm_dir() / "config.json"), 0)
        if spec.startswith("preset:"):
            from profiling.inputs.models import preset_parameters

            return preset_parameters(spec.removeprefix("preset:"))
        packaged = _packaged_config(spec)
        if packaged is not None:
            return _config_parameters(str(packaged.resolve()), packaged.stat().st_mtime_ns)
        folder = Path(spec.removeprefix("path:").strip()).expanduser()
        if not (spec.startswith("path:") or str(spec).startswith(("/", "./", "../", "~"))):
            return None
        if spec_format(spec) == "onnx":
            from profiling.inputs.onnx_folder import inspect_onnx_folder

            return int(inspect_onnx_folder(folder)["parameters"])
        config = _config_file(folder)
        return _config_parameters(str(config.resolve()), config.stat().st_mtime_ns)
    except Exception as exc:  # noqa: BLE001 - unknown up front only means "checked when the run builds it"
        log.info("parameters of %s not known up front: %s", spec, exc)
        return None


@functools.lru_cache(maxsize=16)
def _config_parameters(config_file: str, _mtime: int) -> int:
    from compression.meta_model import meta_parameters

    return meta_parameters(Path(config_file).parent)
