"""Ready-made technique sequences (the reference walk-through, a quick demo) and readable variant names."""

from __future__ import annotations

import logging
from typing import Any

import compression
from compression.registry import REGISTRY, TechniqueConfig, TechniqueError

log = logging.getLogger(__name__)

SEED_HELP = (
    "The reference walk-through: the original model; ONNX Runtime; TorchScript; torch.export; dynamic int8 in "
    "PyTorch and in ONNX Runtime; 25 %, 50 % and 90 % of the attention heads pruned at random; a distilled student "
    "with half the layers; and everything chained. The reference chains 'distilled -> ONNX -> int8 -> pruned', "
    "which cannot run literally: head pruning is structural and acts on the PyTorch model, so it must come before "
    "the export (an ONNX or int8 model cannot be pruned). The chain here is distill → prune-heads 50 % → onnx → int8."
)
QUICK_HELP = "A short sweep for demos and tests: original, ONNX Runtime (fp32 and int8), PyTorch int8, 50 % heads pruned."

_SHORT = {
    "onnx-int8": "int8",
    "torch-int8": "torch int8",
    "torch-export": "torch.export",
    "openvino-int8": "OpenVINO int8",
}
_SINGLE = {
    "onnx": "ONNX Runtime",
    "onnx-int8": "ONNX Runtime int8",
    "torchscript": "TorchScript",
    "torch-export": "torch.export",
    "torch-int8": "PyTorch int8",
    "distill": "Distilled student",
    "openvino": "OpenVINO",
    "openvino-int8": "OpenVINO int8",
}


def _config(spec: str) -> dict[str, Any]:
    """Technique config JSON for a spec; if the technique is not registered (yet), a plain dict the runner refuses."""
    try:
        return compression.parse_spec(spec).to_json()
    except TechniqueError as exc:
        log.warning("preset step %r unavailable: %s", spec, exc)
        name, _, rest = spec.partition(":")
        data: dict[str, Any] = {"technique": name}
        for part in filter(None, rest.split(",")):
            key, _, value = part.partition("=")
            data[key] = value
        return data


def _fraction_text(fraction: Any) -> str:
    try:
        return f"{float(fraction) * 100:g} %"
    except (TypeError, ValueError):
        return str(fraction)


def _options_text(cfg: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """`` (method=entropy, examples=64)``: the options that differ from the defaults, so two variants of one
    technique never share a name; empty when all are defaults or the config cannot be read."""
    try:
        spec = compression.config_from_json(cfg).spec()
    except (TechniqueError, TypeError, ValueError):
        return ""
    _, _, rest = spec.partition(":")
    parts = [p for p in rest.split(",") if p and p.partition("=")[0] not in skip]
    return f" ({', '.join(parts)})" if parts else ""


def step_name(cfg: dict[str, Any]) -> str:
    """Short name of one chain step, e.g. ``prune-heads 50 %`` or ``int8``."""
    name = str(cfg.get("technique", "?"))
    if name == "prune-heads":
        text = f"prune-heads {_fraction_text(cfg.get('fraction'))}"
        return text + _options_text(cfg, skip=("fraction",))
    return _SHORT.get(name, name) + _options_text(cfg)


def variant_name(chain: list[dict[str, Any]]) -> str:
    """A readable name for a chain of technique config JSON: "ONNX Runtime int8", "distill → onnx → int8"."""
    names = [str(c.get("technique", "?")) for c in chain]
    if not chain:
        return "Original"
    if names == ["onnx", "onnx-int8"]:  # the export's and the quantizer's non-default options tell variants apart
        return "ONNX Runtime int8" + _options_text(chain[0]) + _options_text(chain[1])
    if len(chain) == 1:
        cfg = chain[0]
        if names[0] == "prune-heads":
            return f"Heads pruned {_fraction_text(cfg.get('fraction'))}" + _options_text(cfg, skip=("fraction",))
        return _SINGLE.get(names[0], names[0]) + _options_text(cfg)
    return " → ".join(step_name(c) for c in chain)


def complete_chain(configs: list[TechniqueConfig], start_format: str = "hf") -> list[TechniqueConfig]:
    """Prepend the export a chain needs to start from the original's format (a PyTorch model: ``onnx-int8`` alone ->
    ``onnx > onnx-int8``; an ONNX one, ``start_format`` "onnx": ``openvino-int8`` -> ``openvino > openvino-int8``)."""
    if not configs or start_format in configs[0].accepts:
        return list(configs)
    for name in sorted(REGISTRY):
        cls = REGISTRY[name].config_cls
        if start_format in cls.accepts and cls.produces in configs[0].accepts and not cls.needs_train_data:
            return [cls(), *configs]
    return list(configs)


def start_refusal(technique: str, start_format: str) -> str | None:
    """Why ``technique`` alone (after the export :func:`complete_chain` would put before it) cannot start from an
    original of ``start_format``, naming the format (compression.registry.format_refusal), or None."""
    from compression.registry import format_refusal

    if start_format == "hf" or technique not in REGISTRY:
        return None
    try:
        first = complete_chain([REGISTRY[technique].config_cls()], start_format)[0]
    except (TypeError, ValueError):
        first = REGISTRY[technique].config_cls  # type: ignore[assignment]
    return format_refusal(first.name, start_format)


def variant(specs: list[str], name: str | None = None) -> dict[str, Any]:
    chain = [_config(s) for s in specs]
    return {"name": name or variant_name(chain), "chain": chain}


def _seed() -> list[dict[str, Any]]:
    return [
        variant([], "Original"),
        variant(["onnx"]),
        variant(["torchscript"]),
        variant(["torch-export"]),
        variant(["torch-int8"]),
        variant(["onnx", "onnx-int8"]),
        variant(["prune-heads:fraction=0.25,method=random"]),
        variant(["prune-heads:fraction=0.5,method=random"]),
        variant(["prune-heads:fraction=0.9,method=random"]),
        variant(["distill"], "Distilled (half the layers)"),
        variant(["distill", "prune-heads:fraction=0.5,method=random", "onnx", "onnx-int8"]),
    ]


def _quick() -> list[dict[str, Any]]:
    return [
        variant([], "Original"),
        variant(["onnx"]),
        variant(["onnx", "onnx-int8"]),
        variant(["torch-int8"]),
        variant(["prune-heads:fraction=0.5,method=random"]),
    ]


SEED: list[dict[str, Any]] = _seed()
QUICK: list[dict[str, Any]] = _quick()
PRESETS: dict[str, list[dict[str, Any]]] = {"seed": SEED, "quick": QUICK}
PRESET_HELP: dict[str, str] = {"seed": SEED_HELP, "quick": QUICK_HELP}
