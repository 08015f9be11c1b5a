"""Technique "prune-magnitude": unstructured magnitude pruning of the encoder's Linear weights, stored sparse."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.layer_names import canonical_layer_list, parse_layer_list
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

SCOPES = ("per-layer", "global")
LATENCY_WARNING = (
    "Zeros are still multiplied: PyTorch and ONNX Runtime use dense kernels, so no speed-up is to be expected and "
    "the model takes its dense size in RAM once loaded; only the file on disk shrinks (bitmask + nonzero values). "
    "benchmarks/sparse_latency.py measures it (interleaved A/B against the original)."
)


def parse_layers(value: str, field_name: str = "exclude_layers") -> tuple[str, ...]:
    """Module names separated by ``+``, commas, semicolons or spaces -> tuple (one parser for every technique)."""
    return parse_layer_list(value)


def canonical_layers(cfg: object) -> None:
    """Store ``exclude_layers`` in its ``+``-joined form so the config's spec string parses back to it."""
    object.__setattr__(cfg, "exclude_layers", canonical_layer_list(cfg.exclude_layers))


def check_fraction(name: str, value: Any, upper_inclusive: bool = False) -> None:
    """ValueError unless ``0 < value < 1`` (or ``<= 1``), naming the field and the bad value."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    ok = ok and 0 < value and (value <= 1 if upper_inclusive else value < 1)
    if not ok:
        upper = "1 (inclusive)" if upper_inclusive else "1"
        raise ValueError(f"{name} must be a number above 0 and below {upper}, got {value!r}")


def target_linears(model: Any, include_classifier: bool = False, exclude: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """(torch module name, nn.Linear) of the transformer blocks (plus pooler/classifier if asked), minus ``exclude``.

    Only the blocks' Linears are needed (compression.structure finds them whatever the attention layout);
    embedding projections (ELECTRA, ALBERT) are never included. An excluded name that is not one of the model's
    Linears raises TechniqueError (a typo must not pass silently).
    """
    from torch import nn

    from compression.structure import find

    structure = find(model)  # raises StructureError (a TechniqueError) naming the architecture
    in_blocks = set(structure.block_linears())
    head = set(structure.head)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    unknown = [e for e in exclude if e not in {n for n, _ in linears}]
    if unknown:
        examples = ", ".join(n for n, _ in linears[:3])
        raise TechniqueError(f"exclude_layers: {unknown[0]!r} is not a Linear layer of this model (e.g. {examples})")
    chosen = [(n, m) for n, m in linears if n in in_blocks or (include_classifier and n in head)]
    return [(n, m) for n, m in chosen if n not in exclude]


def magnitude_masks(weights: list[Any], sparsity: float, scope: str) -> list[Any]:
    """Boolean keep-masks removing exactly round(sparsity * n) smallest-|w| entries (per matrix or over all)."""
    import torch

    def keep_mask(flat_abs: Any, n_prune: int) -> Any:
        order = torch.argsort(flat_abs, stable=True)  # ties broken by position: the count is exact
        keep = torch.ones(flat_abs.numel(), dtype=torch.bool)
        keep[order[:n_prune]] = False
        return keep

    if scope == "per-layer":
        return [keep_mask(w.detach().abs().reshape(-1), round(sparsity * w.numel())).view(w.shape) for w in weights]
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights])
    keep = keep_mask(flat, round(sparsity * flat.numel()))
    out, start = [], 0
    for w in weights:
        out.append(keep[start : start + w.numel()].view(w.shape))
        start += w.numel()
    return out


def sparsity_report(linears: list[tuple[str, Any]]) -> dict[str, Any]:
    """Overall and per-layer fraction of zero weights in the given Linears."""
    zeros = sum(int((m.weight == 0).sum()) for _, m in linears)
    total = sum(m.weight.numel() for _, m in linears)
    return {
        "weight_sparsity": zeros / max(1, total),
        "pruned_weights": zeros,
        "prunable_weights": total,
        "layer_sparsity": {n: round(float((m.weight == 0).float().mean()), 6) for n, m in linears},
    }


@dataclass(frozen=True)
class MagnitudePruneConfig(TechniqueConfig):
    """Zero the smallest-magnitude Linear weights and store the model in a compact sparse file."""

    name: ClassVar[str] = "prune-magnitude"
    label: ClassVar[str] = "Magnitude pruning (unstructured)"
    group: ClassVar[str] = "pruning"
    help: ClassVar[str] = (
        "Sets the given fraction of the encoder's Linear weights with the smallest absolute value to zero, per "
        "matrix or over all matrices at once (global), without retraining. Stored as a bitmask plus the nonzero "
        "values (one bit per weight plus the kept values), so the file shrinks with the sparsity; loads back "
        "exactly."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    warning: ClassVar[str | None] = LATENCY_WARNING

    sparsity: float = field(
        default=0.5, metadata={"help": "Fraction of the weights set to zero (0 < s < 1).", "min": 0.05, "max": 0.95}
    )
    scope: str = field(
        default="per-layer",
        metadata={
            "help": "per-layer: the same sparsity in every matrix; global: one magnitude threshold over all "
            "matrices (sensitive layers keep more weights).",
            "choices": list(SCOPES),
        },
    )
    include_classifier: bool = field(
        default=False, metadata={"help": "Also prune the pooler and classifier Linears (embeddings never)."}
    )
    exclude_layers: str = field(
        default="",
        metadata={
            "help": "Linear layers left dense, by torch module name separated by commas or ';' (e.g. "
            "bert.encoder.layer.3.attention.self.query); the sensitivity map suggests them."
        },
    )

    def __post_init__(self) -> None:
        check_fraction("sparsity", self.sparsity)
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        self.require_bools("include_classifier")
        canonical_layers(self)


@register(MagnitudePruneConfig)
def prune_magnitude(src: Artifact, cfg: MagnitudePruneConfig, out_dir: Path, ctx: Context) -> Artifact:
    import torch

    from compression.hf_io import load_model, save_model

    ctx.progress(0.0, "loading model")
    model = load_model(src.path)
    linears = target_linears(model, cfg.include_classifier, parse_layers(cfg.exclude_layers))
    if not linears:
        raise TechniqueError(f"{cfg.spec()}: no Linear layer left to prune")
    ctx.progress(0.3, f"pruning {len(linears)} Linear layers ({cfg.scope})")
    masks = magnitude_masks([m.weight for _, m in linears], cfg.sparsity, cfg.scope)
    with torch.no_grad():
        for (_, m), keep in zip(linears, masks, strict=True):
            m.weight.masked_fill_(~keep, 0.0)  # +0.0 (w * 0 would give -0.0, stored as a value)
    report = sparsity_report(linears)
    ctx.progress(0.7, "saving sparse weights")
    meta = save_model(model, out_dir, sparse=True)
    copy_tokenizer(src.path, out_dir)
    log.info("magnitude pruning: %.1f%% of %d weights zeroed", 100 * report["weight_sparsity"], report["prunable_weights"])
    note = (f"{cfg.spec()}: {report['weight_sparsity']:.1%} of the pruned layers' weights are zero; dense kernels "
            "still multiply them (no speed-up expected)")
    notes = [*src.meta.get("notes", []), note]
    ctx.progress(1.0, "pruned")
    return derive_sparse(src, out_dir, cfg.spec(), meta, report, "magnitude", notes)


def derive_sparse(
    src: Artifact, out_dir: Path, spec: str, meta: dict, report: dict, method: str, notes: list[str], **extra: Any
) -> Artifact:
    """The artifact of a sparse (bitmask + values) model, with its sparsity figures; shared by magnitude and
    movement pruning."""
    return src.derive(
        out_dir,
        "hf",
        spec,
        **meta,
        nonzero_params=meta["param_count"] - report["pruned_weights"],
        weight_sparsity=report["weight_sparsity"],
        pruned_weights=report["pruned_weights"],
        prunable_weights=report["prunable_weights"],
        pruning_method=method,
        notes=notes,
        **extra,
    )
