"""Technique "prune-movement": movement pruning (Sanh et al. 2020), scores learned while fine-tuning, stored sparse."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.magnitude_pruning import (
    LATENCY_WARNING,
    canonical_layers,
    check_fraction,
    derive_sparse,
    parse_layers,
    sparsity_report,
    target_linears,
)
from compression.registry import Context, TechniqueConfig, TechniqueError, register
from compression.training import adamw_with_linear_decay, check_labeled, run_steps

log = logging.getLogger(__name__)

MAX_LENGTH = 64  # training sequence cap (as distillation): CPU steps stay short
SCORE_INITS = ("magnitude", "zero")


def cubic_sparsity(step: int, total: int, final: float, warmup: float = 0.1, ramp_end: float = 0.7) -> float:
    """Sanh et al.'s cubic schedule: 0 during warm-up, s_f (1 - (1 - t)^3) over the ramp, then s_f held."""
    start, end = warmup * total, ramp_end * total
    if step < start:
        return 0.0
    if step >= end or end <= start:
        return final
    t = (step - start) / (end - start)
    return final * (1 - (1 - t) ** 3)


def topk_mask(scores: Any, sparsity: float) -> Any:
    """Float keep-mask of the (1 - sparsity) highest scores (exactly round(sparsity * n) zeros; ties by position)."""
    import torch

    flat = scores.detach().reshape(-1)
    n_prune = round(sparsity * flat.numel())
    mask = torch.ones_like(flat)
    if n_prune:
        mask[torch.argsort(flat, stable=True)[:n_prune]] = 0.0
    return mask.view_as(scores)


def fast_topk_mask(scores: Any, sparsity: float) -> Any:
    """Training-time mask: scores above the k-th smallest (O(n) selection instead of a sort; ties all pruned)."""
    flat = scores.detach().reshape(-1)
    n_prune = round(sparsity * flat.numel())
    if n_prune == 0:
        return torch_ones_like(scores)
    threshold = flat.kthvalue(n_prune).values
    return (scores.detach() > threshold).to(scores.dtype)


def torch_ones_like(t: Any) -> Any:
    import torch

    return torch.ones_like(t)


def _ste_class() -> Any:
    import torch

    class TopKSTE(torch.autograd.Function):
        """Forward: the top-k mask of the scores; backward: the gradient passes straight through to the scores."""

        @staticmethod
        def forward(ctx: Any, scores: Any, sparsity: float) -> Any:
            return fast_topk_mask(scores, sparsity)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad, None

    return TopKSTE


def _masked_weight_module(scores: Any, state: dict[str, float]) -> Any:
    """A parametrization W -> W * TopK(S): dL/dS = dL/dW' * W, the movement score update of the paper."""
    from torch import nn

    ste = _ste_class()

    class MaskedWeight(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scores = scores

        def forward(self, weight: Any) -> Any:
            return weight * ste.apply(self.scores, state["sparsity"])

    return MaskedWeight()


def finetune(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    extra_groups: Sequence[dict[str, Any]] = (),
    before_step: Callable[[int], None] | None = None,
    progress: Callable[[float, str], None] | None = None,
    what: str = "fine-tuning",
) -> dict[str, Any]:
    """Cross-entropy fine-tuning on seeded random batches of the train split, embeddings frozen (in place)."""
    import torch
    import torch.nn.functional as F

    from compression.hf_io import encode

    rng = random.Random(seed)
    model.get_input_embeddings().weight.requires_grad_(False)
    extra = {id(p) for g in extra_groups for p in g["params"]}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in extra]
    optimizer, schedule = adamw_with_linear_decay([{"params": params, "lr": lr}, *extra_groups], lr, steps)

    def batches() -> Iterator[list[int]]:  # seeded random batches, a fresh permutation whenever one runs out
        order: list[int] = []
        while True:
            if len(order) < batch_size:
                order += rng.sample(range(len(texts)), len(texts))
            idx, order = order[:batch_size], order[batch_size:]
            yield idx

    def loss_of(idx: list[int]) -> Any:
        inputs = encode(model, tokenizer, [texts[i] for i in idx], MAX_LENGTH)
        return F.cross_entropy(model(**inputs).logits, torch.tensor([int(labels[i]) for i in idx]))

    return run_steps(model, batches(), steps, loss_of, optimizer, schedule, seed, what, progress, before_step)


def check_train_data(model: Any, texts: Sequence[str], labels: Sequence[int], what: str) -> None:
    check_labeled(texts, labels, int(model.config.num_labels), what)


@dataclass(frozen=True)
class MovementPruneConfig(TechniqueConfig):
    """Learn one importance score per weight while fine-tuning; keep the top-scored weights (Sanh et al. 2020)."""

    name: ClassVar[str] = "prune-movement"
    label: ClassVar[str] = "Movement pruning (fine-tuned)"
    group: ClassVar[str] = "pruning"
    help: ClassVar[str] = (
        "Fine-tunes on the training split while learning a score per encoder Linear weight; the forward pass uses "
        "only the top-scored weights (straight-through estimator), with the pruned fraction raised from 0 to the "
        "target on a cubic schedule (Sanh et al. 2020): weights moving away from zero are kept. At "
        "high sparsity it usually keeps more accuracy than magnitude pruning, at the cost of training (the run "
        "shows by how much). Stored sparse like prune-magnitude."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = True
    warning: ClassVar[str | None] = "Trains the model (minutes on CPU, capped by steps). " + LATENCY_WARNING

    sparsity: float = field(
        default=0.5, metadata={"help": "Fraction of the weights set to zero (0 < s < 1).", "min": 0.05, "max": 0.95}
    )
    steps: int = field(default=200, metadata={"help": "Fine-tuning steps (the sparsity ramps up over the first 70%).", "min": 1})
    batch_size: int = field(default=16, metadata={"help": "Training batch size.", "min": 1})
    lr: float = field(default=3e-5, metadata={"help": "AdamW learning rate of the weights (linear decay).", "min": 0.0})
    score_lr: float = field(default=1e-2, metadata={"help": "Learning rate of the pruning scores.", "min": 0.0})
    seed: int = field(default=0, metadata={"help": "Seed for batches and dropout."})
    exclude_layers: str = field(
        default="",
        metadata={"help": "Linear layers left dense, by torch module name separated by commas or ';'."},
    )
    score_init: str = field(
        default="magnitude",
        metadata={
            "help": "Starting scores. magnitude: |W| over its mean per matrix, so a short CPU budget refines "
            "magnitude pruning (zero-initialised scores need far more steps than a CPU budget gives before they "
            "beat random pruning); zero: equal scores as in the paper, which trains for epochs.",
            "choices": list(SCORE_INITS),
        },
    )

    def __post_init__(self) -> None:
        check_fraction("sparsity", self.sparsity)
        if self.score_init not in SCORE_INITS:
            raise ValueError(f"score_init must be one of {', '.join(SCORE_INITS)}, got {self.score_init!r}")
        self.require_whole_numbers("steps", "batch_size", "seed")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "score_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a number above 0, got {v!r}")
        canonical_layers(self)


def movement_prune(model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], cfg: MovementPruneConfig,
                   progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Train scores and weights in place, then leave exactly ``cfg.sparsity`` of each target matrix at zero."""
    import torch
    from torch.nn.utils import parametrize

    linears = target_linears(model, False, parse_layers(cfg.exclude_layers))
    if not linears:
        raise TechniqueError(f"{cfg.spec()}: no Linear layer left to prune")
    state = {"sparsity": 0.0}
    scores = []
    for _, m in linears:
        if cfg.score_init == "zero":  # equal scores: the movement alone decides the ranking
            s = torch.nn.Parameter(torch.zeros_like(m.weight))
        else:
            w = m.weight.detach().abs()
            s = torch.nn.Parameter(w / w.mean().clamp_min(1e-12))
        scores.append(s)
        parametrize.register_parametrization(m, "weight", _masked_weight_module(s, state))

    def before_step(step: int) -> None:
        state["sparsity"] = cubic_sparsity(step, cfg.steps, cfg.sparsity)

    try:
        stats = finetune(
            model, tokenizer, texts, labels, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
            extra_groups=[{"params": scores, "lr": cfg.score_lr, "weight_decay": 0.0}], before_step=before_step,
            progress=progress, what="movement pruning",
        )
    finally:
        for _, m in linears:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    with torch.no_grad():
        for (_, m), s in zip(linears, scores, strict=True):
            m.weight.masked_fill_(topk_mask(s, cfg.sparsity) == 0, 0.0)
    return {**stats, **sparsity_report(linears)}


@register(MovementPruneConfig)
def prune_movement(src: Artifact, cfg: MovementPruneConfig, out_dir: Path, ctx: Context) -> Artifact:
    from compression.hf_io import load_model, load_tokenizer, save_model

    ctx.progress(0.0, "loading model")
    model = load_model(src.path)
    texts, labels = list(ctx.train_texts), list(ctx.train_labels)
    check_train_data(model, texts, labels, "movement pruning")
    tokenizer = load_tokenizer(src.path)
    report = movement_prune(model, tokenizer, texts, labels, cfg, lambda f, m: ctx.progress(0.02 + 0.9 * f, m))
    ctx.progress(0.95, "saving sparse weights")
    meta = save_model(model, out_dir, sparse=True)
    copy_tokenizer(src.path, out_dir)
    note = (f"{cfg.spec()}: {report['steps']} fine-tuning steps (loss {report['loss_first']:.3f} -> "
            f"{report['loss_last']:.3f}), {report['weight_sparsity']:.1%} of the pruned layers' weights are zero")
    ctx.progress(1.0, "pruned")
    return derive_sparse(
        src,
        out_dir,
        cfg.spec(),
        meta,
        report,
        "movement",
        [*src.meta.get("notes", []), note],
        train_steps=report["steps"],
        train_time_s=report["seconds"],
    )
