"""Technique "qat": quantization-aware fine-tuning, Linear weights fake-quantized exactly as the int8 step will."""

from __future__ import annotations

import logging
import math
import random
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, register
from compression.training import adamw_with_linear_decay, check_labeled, run_steps

log = logging.getLogger(__name__)

# The int8 step whose grid the training uses (checked against the library in tests/compression/test_qat.py): ONNX Runtime
# quantize_dynamic with signed per-channel weights, scale = absmax / 127 per output channel, q in [-127, 127]. That
# grid is a fixed point: weights already on it are quantized to exactly themselves.
# torch.ao's quantize_dynamic (torch-int8) is not offered: its per-tensor symmetric observer uses
# scale = absmax / 127.5 with q in [-128, 127], so the largest weight never lands on the grid and re-quantizing any
# fp32 weights rescales them by 127/127.5 (measured: 98.7 % of a layer's weights moved), no exact target exists.
# With reduce_range (the recipe of CPUs without VNNI, see compression.int8_recipe) the grid is absmax / 64, q in
# [-64, 64]: a fixed point as well. The grid is the one this CPU's onnx-int8 recipe uses, recorded with the model.
TARGETS = ("onnx-int8",)
GRIDS = {("onnx-int8", False): (127.0, -127, 127, True), ("onnx-int8", True): (64.0, -64, 64, True)}


@dataclass(frozen=True)
class QatConfig(TechniqueConfig):
    name: ClassVar[str] = "qat"
    numeric: ClassVar[str | None] = "int8"
    label: ClassVar[str] = "Quantization-aware fine-tuning (for int8)"
    group: ClassVar[str] = "quantization"
    help: ClassVar[str] = (
        "Fine-tunes the model on the training split for a few hundred steps while every Linear layer computes with "
        "its weights rounded to the int8 grid the chosen int8 step will use (symmetric signed int8; a "
        "straight-through estimator lets gradients through the rounding), optionally with activations "
        "fake-quantized per tensor as dynamic int8 does. The weights are saved already on that grid, so a "
        "following onnx > onnx-int8 reproduces them exactly (PyTorch's torch-int8 grid cannot be reproduced: "
        "its per-tensor scale moves weights that are already on it)."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = True
    warning: ClassVar[str | None] = (
        "Trains a model: takes minutes on CPU (one forward and backward pass per step, capped by steps). Follow it with "
        "the int8 step it targets: by itself it is a float32 model with rounded weights."
    )

    steps: int = field(default=200, metadata={"help": "Optimiser steps on the training split.", "min": 1,
                                               "max": 100_000})
    target: str = field(
        default="onnx-int8",
        metadata={"help": "The int8 step that follows: onnx-int8 (signed per-channel weights, ONNX Runtime).",
                  "choices": list(TARGETS)},
    )
    activations: bool = field(
        default=False,
        metadata={"help": "Also fake-quantize each Linear's input per tensor (uint8, range of the batch), "
                  "as dynamic int8 does at run time."},
    )
    batch_size: int = field(default=16, metadata={"help": "Training batch size.", "min": 1, "max": 512})
    lr: float = field(default=2e-5, metadata={"help": "AdamW learning rate (linear decay to 0).", "min": 0.0})
    seed: int = field(default=0, metadata={"help": "Seed for shuffling and dropout."})

    def __post_init__(self) -> None:
        self.require_whole_numbers("steps", "batch_size", "seed")
        if not 1 <= self.steps <= 100_000:
            raise ValueError(f"steps must be between 1 and 100000, got {self.steps}")
        if not 1 <= self.batch_size <= 512:
            raise ValueError(f"batch_size must be between 1 and 512, got {self.batch_size}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        self.require_bools("activations")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a number above 0, got {self.lr!r}")

    def build_salt(self) -> str:
        """The int8 grid this CPU's recipe uses (7 or 8 bits), which the training rounds to."""
        return f"rr={target_reduce_range(self.target)}"

    def check(self, meta: dict) -> None:
        if meta.get("quantized"):
            raise ValueError(f"the model is already quantized ({meta['quantized']}); train before quantizing")
        if meta.get("half_precision"):
            raise ValueError(f"quantization-aware training needs a float32 model; this one is {meta['half_precision']}")


def target_reduce_range(target: str) -> bool:
    """Whether this CPU's recipe for ``target`` uses 7-bit weights (then the training grid does too)."""
    from compression.int8_recipe import resolve

    return resolve(cpu=None).reduce_range if target == "onnx-int8" else False


def quantize_weight(w: Any, target: str, reduce_range: bool = False) -> Any:
    """``w`` rounded to the target's symmetric int8 grid (per output row, i.e. per ONNX output channel)."""
    import torch

    div, qmin, qmax, per_channel = GRIDS[target, reduce_range]
    absmax = w.detach().abs().amax(dim=1, keepdim=True) if per_channel else w.detach().abs().max()
    scale = torch.where(absmax > 0, absmax / div, torch.ones_like(absmax))
    return torch.clamp(torch.round(w / scale), qmin, qmax) * scale


def fake_quant_activation(x: Any) -> Any:
    """Per-tensor asymmetric uint8 fake quantization with the batch's own range (ORT DynamicQuantizeLinear)."""
    import torch

    lo = torch.clamp(x.detach().min(), max=0.0)
    hi = torch.clamp(x.detach().max(), min=0.0)
    scale = torch.clamp((hi - lo) / 255.0, min=1e-12)
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    q = (torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp) * scale
    return x + (q - x).detach()


def attach_fake_quant(model: Any, target: str, activations: bool, reduce_range: bool = False) -> list[Any]:
    """Make every nn.Linear compute with fake-quantized weights (STE); returns the patched modules."""
    import torch.nn.functional as F
    from torch import nn

    def forward(self: Any, x: Any) -> Any:
        w = self.weight
        wq = w + (quantize_weight(w, target, reduce_range) - w).detach()  # straight-through estimator
        return F.linear(fake_quant_activation(x) if activations else x, wq, self.bias)

    patched = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in patched:
        m.forward = types.MethodType(forward, m)
    return patched


def detach_fake_quant(patched: list[Any], target: str, reduce_range: bool = False) -> None:
    """Restore plain Linear forwards and snap the weights onto the int8 grid for good."""
    import torch

    with torch.no_grad():
        for m in patched:
            del m.forward  # the instance attribute; the class's forward is back
            m.weight.copy_(quantize_weight(m.weight, target, reduce_range))


def train_qat(model: Any, tokenizer: Any, texts: list[str], labels: list[int], cfg: QatConfig, max_length: int,
              progress: Any = None) -> dict[str, Any]:
    """Fine-tune ``model`` in place with fake-quantized Linears; returns training stats."""
    import torch
    import torch.nn.functional as F

    from compression.distillation import _schedule
    from compression.hf_io import encode

    rng = random.Random(cfg.seed)
    model.get_input_embeddings().weight.requires_grad_(False)  # big and not quantized: cheaper steps
    optimizer, schedule = adamw_with_linear_decay([p for p in model.parameters() if p.requires_grad], cfg.lr,
                                                  cfg.steps)
    reduce_range = target_reduce_range(cfg.target)
    patched = attach_fake_quant(model, cfg.target, cfg.activations, reduce_range)

    def loss_of(idx: list[int]) -> Any:
        inputs = encode(model, tokenizer, [texts[j] for j in idx], max_length)
        return F.cross_entropy(model(**inputs).logits, torch.tensor([int(labels[j]) for j in idx]))

    try:
        stats = run_steps(model, _schedule(texts, cfg.batch_size, cfg.steps, rng), cfg.steps, loss_of, optimizer,
                          schedule, cfg.seed, "quantization-aware training", progress)
    finally:
        detach_fake_quant(patched, cfg.target, reduce_range)
    return {**stats, "linear_layers": len(patched)}


@register(QatConfig)
def qat(src: Artifact, cfg: QatConfig, out_dir: Path, ctx: Context) -> Artifact:
    from compression.hf_io import load_model, load_tokenizer, save_model

    texts, labels = list(ctx.train_texts), list(ctx.train_labels)
    check_labeled(texts, labels, None, "quantization-aware training")  # before the model is loaded
    ctx.progress(0.0, "loading the model")
    model = load_model(src.path)
    check_labeled(texts, labels, int(model.config.num_labels), "quantization-aware training")
    stats = train_qat(model, load_tokenizer(src.path), texts, labels, cfg, int(src.meta.get("max_length", 128)),
                      lambda f, m: ctx.progress(0.02 + 0.93 * f, m))
    log.info("qat: %d steps in %.1f s, loss %.3f -> %.3f", stats["steps"], stats["seconds"], stats["loss_first"],
             stats["loss_last"])
    ctx.progress(0.97, "saving")
    meta = save_model(model, out_dir)
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "quantization-aware training done")
    note = (f"quantization-aware fine-tuning for {cfg.target} ({stats['steps']} steps, loss {stats['loss_first']:.3f}"
            f" -> {stats['loss_last']:.3f}); weights are on the int8 grid of {cfg.target}")
    return src.derive(
        out_dir, "hf", cfg.spec(), **meta,
        qat={"target": cfg.target, "activations": cfg.activations, "reduce_range": target_reduce_range(cfg.target),
             **stats},
        notes=[*src.meta.get("notes", []), note],
    )
