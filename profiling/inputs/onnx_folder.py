"""An ONNX classifier folder as the original model: ``model.onnx`` (+ external data), its tokenizer files, and
config.json (as ``optimum-cli export onnx`` writes) or this tool's artifact.json (its ``onnx`` technique's output).

Checked before anything is copied (inputs the tool can feed, labels, external data inside the folder), then copied
into an artifact of format "onnx": only the techniques that take an ONNX graph apply to it
(compression.registry.format_refusal says why the others do not). No torch is imported here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compression.artifact import Artifact
from profiling import paths
from profiling.inputs.model_files import DEFAULT_MAX_LENGTH, BaseModelError, build_cached, write_tokenizer

ProgressFn = Callable[[float, str], None]

ONNX_FILE = "model.onnx"
FEEDABLE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INT8_OPS = {"MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul", "QAttention", "QGemm", "QuantizeLinear",
            "DequantizeLinear", "MatMulNBits"}
RAM_FRACTION_LIMIT = 0.4  # as profiling.inputs.models: the fp32 weights may take at most this share of the RAM
NOTE = "an ONNX graph given as the original: only the techniques that take an ONNX graph apply"


def is_onnx_folder(folder: Path) -> bool:
    """A folder whose model is ``model.onnx`` (no safetensors weights beside it: those would be the PyTorch model)."""
    return (folder / ONNX_FILE).is_file() and not any(folder.glob("*.safetensors"))


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaseModelError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BaseModelError(f"{path} is not a JSON object")
    return data


def _labels(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json or {}, the artifact meta or {}): where the label names come from."""
    config = _json(folder / "config.json") if (folder / "config.json").is_file() else {}
    meta: dict[str, Any] = {}
    if (folder / "artifact.json").is_file():
        manifest = _json(folder / "artifact.json")
        if manifest.get("format") != "onnx":
            raise BaseModelError(f"{folder}/artifact.json describes a {manifest.get('format')!r} artifact, but the "
                                 f"folder holds {ONNX_FILE}")
        meta = dict(manifest.get("meta") or {})
    if not config and not meta:
        raise BaseModelError(f"{folder} holds {ONNX_FILE} but no config.json: its labels are unknown (export it with "
                             "optimum-cli export onnx, which writes config.json beside the graph)")
    return config, meta


def _label_names(config: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label") or meta.get("id2label") or {}
    n = int(config.get("num_labels") or meta.get("num_labels") or len(id2label) or 2)
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n)]


def inspect_onnx_folder(folder: Path) -> dict[str, Any]:
    """Check the folder and describe its graph: inputs, output width, parameters, numeric format, external data.

    BaseModelError with the reason when the folder cannot be the original model."""
    import onnx

    if not (folder / "tokenizer.json").is_file():
        raise BaseModelError(f"{folder} holds {ONNX_FILE} but no tokenizer.json (a fast tokenizer); export the model "
                             "with its tokenizer (optimum-cli export onnx writes it)")
    config, meta = _labels(folder)
    try:
        model = onnx.load(str(folder / ONNX_FILE), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise BaseModelError(f"{folder}/{ONNX_FILE} is not a readable ONNX model: {exc}") from None
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializer_names]
    unknown = [n for n in inputs if n not in FEEDABLE_INPUTS]
    if unknown or "input_ids" not in inputs:
        raise BaseModelError(f"{folder}/{ONNX_FILE} takes the inputs {', '.join(inputs) or 'none'}; a text "
                             f"classifier graph taking {', '.join(FEEDABLE_INPUTS)} (input_ids at least) is needed")
    data_files: set[str] = set()
    for tensor in graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).name != location or target.parent != folder.resolve():
            raise BaseModelError(f"{folder}/{ONNX_FILE} keeps weights in {location!r}, which is not a file in the "
                                 "model's own folder: refused")
        if not target.is_file():
            raise BaseModelError(f"{folder}/{ONNX_FILE} keeps weights in {location}, which is missing")
        data_files.add(location)
    labels = _label_names(config, meta)
    out = graph.output[0].type.tensor_type.shape.dim if graph.output else []
    width = out[-1].dim_value if len(out) == 2 and out[-1].HasField("dim_value") else None
    if width is not None and width != len(labels):
        raise BaseModelError(f"{folder}/{ONNX_FILE} outputs {width} logits per text but its config names "
                             f"{len(labels)} labels ({', '.join(labels)})")
    params = sum(_numel(t.dims) for t in graph.initializer)
    ops = {n.op_type for n in graph.node}
    half = any(t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16) and len(t.dims) >= 2
               for t in graph.initializer)
    return {"config": config, "meta": meta, "labels": labels, "inputs": inputs, "parameters": params,
            "int8_ops": sorted(ops & INT8_OPS), "half": half, "data_files": sorted(data_files)}


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _architecture(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Layers, heads and width from config.json (BERT-style names or DistilBERT's), or the artifact's meta."""
    if not config:
        keep = ("model_type", "num_layers", "heads_per_layer", "hidden_size", "structure", "random_weights")
        return {k: meta[k] for k in keep if k in meta}
    layers = config.get("num_hidden_layers", config.get("n_layers"))
    heads = config.get("num_attention_heads", config.get("n_heads"))
    hidden = config.get("hidden_size", config.get("dim"))
    out: dict[str, Any] = {"model_type": config.get("model_type")}
    if isinstance(layers, int):
        out["num_layers"] = layers
        if isinstance(heads, int):
            out["heads_per_layer"] = [heads] * layers
    if isinstance(hidden, int):
        out["hidden_size"] = hidden
    return out


def check_onnx_folder(folder: Path) -> dict[str, Any]:
    """:func:`inspect_onnx_folder`, then refuse a graph whose fp32 weights would not fit in the RAM here."""
    import psutil

    info = inspect_onnx_folder(folder)
    need = info["parameters"] * 4
    available = psutil.virtual_memory().available
    if need > RAM_FRACTION_LIMIT * available:
        raise BaseModelError(f"{folder} is too big for this machine: {info['parameters'] / 1e6:.0f}M parameters need "
                             f"about {need / 2**30:.1f} GiB as fp32 weights, more than {RAM_FRACTION_LIMIT:.0%} of "
                             f"the {available / 2**30:.1f} GiB of RAM available")
    return info


def import_onnx_folder(folder: Path, progress: ProgressFn | None = None) -> Artifact:
    """Copy a checked ONNX classifier folder into a base artifact of format "onnx" (cached by the files' stamps)."""
    folder = folder.expanduser().resolve()
    info = check_onnx_folder(folder)
    stamp = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()]
    key = hashlib.sha256(repr((str(folder), stamp)).encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in folder.name)[:60]
    target = paths.models_dir() / f"local-onnx-{slug}-{key}"
    report = progress or (lambda frac, msg: None)

    def build(out_dir: Path) -> dict[str, Any]:
        report(0.2, f"copying the ONNX graph from {folder}")
        for name in [ONNX_FILE, *info["data_files"]]:
            shutil.copy2(folder / name, out_dir / name)
        if (folder / "config.json").is_file():
            shutil.copy2(folder / "config.json", out_dir / "config.json")
        write_tokenizer(folder / "tokenizer.json", out_dir, DEFAULT_MAX_LENGTH, aux_from=folder)
        source_meta = info["meta"]
        notes = [NOTE, f"from the local folder {folder}"]
        meta: dict[str, Any] = {
            **_architecture(info["config"], source_meta),
            "num_labels": len(info["labels"]),
            "id2label": {str(i): n for i, n in enumerate(info["labels"])},
            "max_length": DEFAULT_MAX_LENGTH,
            "model_inputs": info["inputs"],
            "param_count": info["parameters"],
            "random_weights": bool(source_meta.get("random_weights", False)),
            "base": folder.name,
            "source": f"path:{folder}",
            "source_format": "onnx",
            "notes": notes,
        }
        if info["int8_ops"]:
            meta["quantized"] = source_meta.get("quantized") or f"int8 graph ({', '.join(info['int8_ops'])})"
        if info["half"]:
            meta["half_precision"] = source_meta.get("half_precision") or "a 16-bit float graph"
        report(0.9, "ONNX graph copied")
        return meta

    artifact = build_cached(target, build, fmt="onnx")
    report(1.0, f"ONNX model {folder.name} ready")
    return artifact

