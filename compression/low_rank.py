"""Technique "low-rank": truncated-SVD factorization of the encoder's Linear layers into two smaller Linears."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.magnitude_pruning import canonical_layers, check_fraction, parse_layers, target_linears
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODES = ("fraction", "energy")


def choose_rank(singular: Any, mode: str, value: float) -> int:
    """Rank from a fraction of full rank (rounded up) or the fewest singular values keeping ``value`` of the energy."""
    import torch

    full = int(singular.numel())
    if mode == "fraction":
        return max(1, min(full, math.ceil(value * full - 1e-9)))
    energy = torch.cumsum(singular.double() ** 2, 0)
    total = float(energy[-1])
    if total == 0:
        return 1
    return max(1, min(full, int(torch.searchsorted(energy / total, torch.tensor(value - 1e-12, dtype=torch.float64))) + 1))


def factorize(weight: Any, rank: int) -> tuple[Any, Any]:
    """(A, B) with B @ A the best rank-``rank`` approximation of ``weight`` (out x in): A is r x in, B is out x r."""
    import torch

    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    a = (root[:, None] * vh[:rank]).to(weight.dtype)
    b = (u[:, :rank] * root[None, :]).to(weight.dtype)
    return a.contiguous(), b.contiguous()


def profitable(rank: int, out_f: int, in_f: int) -> bool:
    """Two factors hold fewer parameters (and multiply-adds) than the dense matrix."""
    return rank * (out_f + in_f) < out_f * in_f


@dataclass(frozen=True)
class LowRankConfig(TechniqueConfig):
    """Replace each encoder Linear W (out x in) by B A with rank r (truncated SVD); optionally fine-tune after."""

    name: ClassVar[str] = "low-rank"
    label: ClassVar[str] = "Low-rank factorization (SVD)"
    group: ClassVar[str] = "pruning"
    help: ClassVar[str] = (
        "Factorizes each Linear of the transformer blocks by truncated SVD into two Linears of rank r (in -> r -> "
        "out), r set as a fraction of the full rank or by the share of the squared singular values (energy) kept. "
        "Fewer parameters only when r (in + out) < in x out (about r < 0.4 x full rank for MiniLM's square "
        "attention matrices); layers where it would not pay are left dense. Optional short fine-tuning recovers "
        "accuracy."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = True  # only when recovery_steps > 0
    warning: ClassVar[str | None] = (
        "Only small ranks speed up: two thin matrix products replace one, so near-full ranks cost time and memory; "
        "without fine-tuning accuracy falls quickly as the rank shrinks (trained weights are not low-rank), and "
        "recovery steps win back only part of it. At high fractions only the wide feed-forward matrices are "
        "factorized, so the model is barely faster."
    )

    mode: str = field(
        default="fraction",
        metadata={"help": "fraction: rank = value x full rank; energy: keep this share of sum(sigma^2).",
                  "choices": list(MODES)},
    )
    value: float = field(
        default=0.25,
        metadata={"help": "Rank fraction or retained energy, above 0 and at most 1.", "min": 0.05, "max": 1.0},
    )
    recovery_steps: int = field(
        default=0, metadata={"help": "Fine-tuning steps on the training split after factorizing (0 = none).", "min": 0}
    )
    lr: float = field(default=5e-5, metadata={"help": "AdamW learning rate of the recovery fine-tuning.", "min": 0.0})
    batch_size: int = field(default=16, metadata={"help": "Batch size of the recovery fine-tuning.", "min": 1})
    seed: int = field(default=0, metadata={"help": "Seed for the recovery batches and dropout."})
    exclude_layers: str = field(
        default="",
        metadata={"help": "Linear layers left dense, by torch module name separated by commas or ';'."},
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_fraction("value" if self.mode == "energy" else "value (rank fraction)", self.value, upper_inclusive=True)
        self.require_whole_numbers("recovery_steps", "batch_size", "seed")
        if self.recovery_steps < 0:
            raise ValueError(f"recovery_steps must be 0 or more, got {self.recovery_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a number above 0, got {self.lr!r}")
        canonical_layers(self)

    def uses_train_data(self) -> bool:
        return self.recovery_steps > 0

    def check(self, meta: dict[str, Any]) -> None:
        if meta.get("low_rank_ranks"):
            raise TechniqueError(f"{self.spec()}: the model is already factorized; factorizing twice is refused")


def factorize_model(model: Any, cfg: LowRankConfig) -> dict[str, Any]:
    """Factorize the target Linears in place; returns {name: rank} of those replaced and of those kept dense."""
    import torch

    from compression.hf_io import LOW_RANK_ATTR, apply_low_rank_structure

    ranks: dict[str, int] = {}
    skipped: dict[str, int] = {}
    factors = {}
    for name, lin in target_linears(model, False, parse_layers(cfg.exclude_layers)):
        w = lin.weight.detach()
        s = torch.linalg.svdvals(w.double())
        r = choose_rank(s, cfg.mode, cfg.value)
        if profitable(r, w.shape[0], w.shape[1]):
            ranks[name] = r
            factors[name] = (factorize(w, r), None if lin.bias is None else lin.bias.detach().clone())
        else:
            skipped[name] = r
    apply_low_rank_structure(model, ranks)
    with torch.no_grad():
        for name, ((a, b), bias) in factors.items():
            seq = model.get_submodule(name)
            seq[0].weight.copy_(a)
            seq[1].weight.copy_(b)
            if bias is not None:
                seq[1].bias.copy_(bias)
    setattr(model.config, LOW_RANK_ATTR, dict(ranks))
    return {"ranks": ranks, "skipped": skipped}


@register(LowRankConfig)
def low_rank(src: Artifact, cfg: LowRankConfig, out_dir: Path, ctx: Context) -> Artifact:
    from compression.hf_io import count_params, load_model, load_tokenizer, save_model
    from compression.movement_pruning import check_train_data, finetune

    ctx.progress(0.0, "loading model")
    model = load_model(src.path)
    params_before = count_params(model)
    texts, labels = list(ctx.train_texts), list(ctx.train_labels)
    if cfg.recovery_steps:
        check_train_data(model, texts, labels, "low-rank recovery fine-tuning")
    ctx.progress(0.05, "truncated SVD of the Linear layers")
    result = factorize_model(model, cfg)
    ranks, skipped = result["ranks"], result["skipped"]
    if not ranks:
        raise TechniqueError(
            f"{cfg.spec()}: no layer gets fewer parameters at this rank (rank x (in + out) must be below in x out); "
            "use a smaller value"
        )
    stats = None
    if cfg.recovery_steps:
        stats = finetune(
            model, load_tokenizer(src.path), texts, labels, steps=cfg.recovery_steps, batch_size=cfg.batch_size,
            lr=cfg.lr, seed=cfg.seed, progress=lambda f, m: ctx.progress(0.1 + 0.8 * f, m), what="recovery",
        )
    ctx.progress(0.92, "saving factorized model")
    meta = save_model(model, out_dir)
    copy_tokenizer(src.path, out_dir)
    note = (f"{cfg.spec()}: {len(ranks)} Linear layers factorized (ranks {min(ranks.values())}-"
            f"{max(ranks.values())}), {len(skipped)} left dense; parameters {params_before:,} -> {meta['param_count']:,}")
    if stats:
        note += f"; {stats['steps']} recovery steps (loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f})"
    ctx.progress(1.0, "factorized")
    return src.derive(
        out_dir,
        "hf",
        cfg.spec(),
        **meta,
        low_rank_ranks=ranks,
        low_rank_skipped=skipped,
        param_count_before_low_rank=params_before,
        recovery_steps=cfg.recovery_steps,
        notes=[*src.meta.get("notes", []), note],
    )
