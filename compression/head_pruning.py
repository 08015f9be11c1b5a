"""Structured attention-head pruning: remove a fraction of heads per layer, at random or by importance."""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

METHODS = ("random", "importance")


def heads_to_prune(fraction: float, heads: int) -> int:
    """How many of ``heads`` heads a fraction removes (rounded half up, so 4 x 0.125 -> 1, not 0)."""
    return math.floor(fraction * heads + 0.5)


def plan_counts(fraction: float, heads_per_layer: Sequence[int]) -> list[int]:
    """Heads to remove in each layer; TechniqueError when a layer would be left without heads."""
    counts = [heads_to_prune(fraction, h) for h in heads_per_layer]
    for layer, (n, h) in enumerate(zip(counts, heads_per_layer, strict=True)):
        if n >= h:
            fewest = min(heads_per_layer)
            raise TechniqueError(
                f"pruning a fraction {fraction:g} of the attention heads would remove all {h} heads of layer "
                f"{layer}; every layer must keep at least one head, so use a fraction of at most "
                f"{(fewest - 1) / fewest:.2f} for this model"
            )
    return counts


@dataclass(frozen=True)
class PruneHeadsConfig(TechniqueConfig):
    """Remove the same fraction of attention heads in every layer (structurally: smaller matrices)."""

    name: ClassVar[str] = "prune-heads"
    label: ClassVar[str] = "Attention-head pruning"
    group: ClassVar[str] = "pruning"
    help: ClassVar[str] = (
        "Removes a fraction of the attention heads in every layer, structurally (smaller Q/K/V and output "
        "matrices), so the model is really smaller and faster. 'random' picks heads at random (as the reference); "
        "'importance' removes the heads with the lowest gradient-based importance (Michel et al. 2019) measured "
        "on a few labeled training batches; with steps > 1 it prunes iteratively (remove a share, re-score the "
        "smaller model, repeat), as Michel et al. do. No fine-tuning afterwards, so accuracy can drop sharply."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = True  # only for method="importance"
    warning: ClassVar[str | None] = "No retraining after pruning: large fractions usually cost accuracy."

    fraction: float = field(
        default=0.5, metadata={"help": "Fraction of heads removed in each layer (0 < f < 1).", "min": 0.0, "max": 1.0}
    )
    method: str = field(default="random", metadata={"help": "Which heads to remove.", "choices": list(METHODS)})
    seed: int = field(default=0, metadata={"help": "Random seed (random choice of heads, sampling of batches)."})
    importance_batches: int = field(
        default=8, metadata={"help": "Labeled training batches used to score heads (importance only).", "min": 1}
    )
    batch_size: int = field(default=16, metadata={"help": "Batch size when scoring heads.", "min": 1})
    steps: int = field(
        default=1,
        metadata={"help": "Importance only: prune in this many rounds, re-scoring the heads after each.", "min": 1},
    )

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or not 0 < f < 1:
            raise ValueError(f"fraction must be a number strictly between 0 and 1, got {f!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.require_whole_numbers("seed", "importance_batches", "batch_size", "steps")
        if self.importance_batches < 1:
            raise ValueError(f"importance_batches must be at least 1, got {self.importance_batches}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.steps > 1 and self.method != "importance":
            raise ValueError(f"steps={self.steps} (iterative pruning) needs method=importance, got {self.method!r}")

    def uses_train_data(self) -> bool:
        return self.method == "importance"

    def check(self, meta: dict[str, Any]) -> None:
        """Refuse models without head information and fractions that would empty a layer."""
        from compression.structure import check as check_structure
        from compression.structure import display_name

        if meta.get("low_rank_ranks"):
            raise TechniqueError(
                f"{self.spec()} cannot follow low-rank factorization (its attention projections are factorized); "
                "prune heads first, then factorize"
            )
        check_structure(self.name, meta)
        heads = meta.get("heads_per_layer")
        if not heads:
            raise TechniqueError(
                f"{self.spec()} needs a model with known attention heads per layer; this "
                f"{display_name(meta.get('model_type'))} artifact has none recorded"
            )
        plan_counts(self.fraction, heads)


@contextlib.contextmanager
def head_mask_hooks(handles: Sequence[Any], masks: Sequence[Any]) -> Iterator[None]:
    """Multiply each head's context vector by ``masks[layer][head]`` before the output projection.

    A forward pre-hook on the output Linear reshapes its input (batch, seq, heads*head_dim) into heads, so the
    mask can be differentiable (importance) or zero (equivalent to removing the head).
    """

    def make_hook(mask: Any, head_size: int) -> Any:
        def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            shaped = x.view(*x.shape[:-1], mask.shape[0], head_size) * mask[:, None].to(x.dtype)
            return (shaped.view_as(x), *args[1:])

        return hook

    removers = [
        h.output.register_forward_pre_hook(make_hook(m, h.head_size)) for h, m in zip(handles, masks, strict=True)
    ]
    try:
        yield
    finally:
        for r in removers:
            r.remove()


def head_importance(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    cfg: PruneHeadsConfig,
    max_length: int,
    progress: Any = None,
) -> list[list[float]]:
    """Michel et al. (2019): |dL/d mask_h| summed over batches, L2-normalised per layer."""
    import torch
    import torch.nn.functional as F

    from compression.hf_io import attention_layers, encode

    handles = attention_layers(model)
    masks = [torch.ones(h.num_heads, requires_grad=True) for h in handles]
    scores = [torch.zeros(h.num_heads) for h in handles]
    order = list(range(len(texts)))
    random.Random(cfg.seed).shuffle(order)
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)][: cfg.importance_batches]
    was_training = model.training
    requires = [p.requires_grad for p in model.parameters()]
    model.eval()  # no dropout: scores reflect the deployed model
    for p in model.parameters():
        p.requires_grad_(False)  # only the mask needs gradients
    try:
        with torch.enable_grad(), head_mask_hooks(handles, masks):
            for b, idx in enumerate(batches):
                inputs = encode(model, tokenizer, [texts[i] for i in idx], max_length)
                target = torch.tensor([int(labels[i]) for i in idx])
                loss = F.cross_entropy(model(**inputs).logits, target)
                grads = torch.autograd.grad(loss, masks)
                for s, g in zip(scores, grads, strict=True):
                    s += g.detach().abs()
                if progress:
                    progress((b + 1) / len(batches), f"scoring heads: batch {b + 1}/{len(batches)}")
    finally:
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
        model.train(was_training)
    normed = [s / (torch.linalg.vector_norm(s) + 1e-20) for s in scores]
    return [[float(x) for x in s] for s in normed]


def choose_heads(
    heads_per_layer: Sequence[int],
    counts: Sequence[int],
    method: str,
    seed: int,
    importance: Sequence[Sequence[float]] | None = None,
) -> list[list[int]]:
    """Heads (current indices) to remove in each layer: the least important, or a seeded random choice."""
    rng = random.Random(seed)
    chosen = []
    for layer, (h, n) in enumerate(zip(heads_per_layer, counts, strict=True)):
        if method == "importance":
            assert importance is not None
            scores = importance[layer]
            chosen.append(sorted(sorted(range(h), key=lambda i: (scores[i], i))[:n]))
        else:
            chosen.append(sorted(rng.sample(range(h), n)))
    return chosen


def iterative_choice(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    counts: Sequence[int],
    cfg: PruneHeadsConfig,
    max_length: int,
    progress: Any = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Michel et al.'s iterative loop on a copy: per round, remove a share of each layer's heads, then re-score.

    Returns the heads to remove (indices of the input model, per layer) and the first round's importance.
    """
    import copy

    from compression.hf_io import attention_layers

    work = copy.deepcopy(model)
    current = [list(range(h.num_heads)) for h in attention_layers(work)]  # input index of each current head
    removed: list[list[int]] = [[] for _ in current]
    first: list[list[float]] = []
    for rnd in range(cfg.steps):
        target = [math.floor(n * (rnd + 1) / cfg.steps + 0.5) for n in counts]
        now = [t - len(r) for t, r in zip(target, removed, strict=True)]
        if not any(now):
            continue

        def report(f: float, m: str, rnd: int = rnd) -> None:
            if progress:
                progress((rnd + f) / cfg.steps, f"round {rnd + 1}/{cfg.steps}, {m}")

        scores = head_importance(work, tokenizer, texts, labels, cfg, max_length, report)
        if not first:
            first = scores
        drop = choose_heads([len(c) for c in current], now, "importance", cfg.seed, scores)
        prune_model(work, drop)
        for layer, d in enumerate(drop):
            removed[layer] += [current[layer][i] for i in d]
            current[layer] = [h for i, h in enumerate(current[layer]) if i not in set(d)]
    return [sorted(r) for r in removed], first


def prune_model(model: Any, remove: Sequence[Sequence[int]]) -> None:
    """Structurally remove the given heads (current indices per layer) from ``model`` in place."""
    from compression.hf_io import attention_layers

    for handle, drop in zip(attention_layers(model), remove, strict=True):
        dropped = set(drop)
        keep = [i for i in range(handle.num_heads) if i not in dropped]
        if len(keep) == handle.num_heads:
            continue
        handle.keep_heads(keep)


def _original_indices(meta: dict[str, Any], heads: Sequence[int]) -> list[list[int]]:
    """Map current head positions to the original model's head indices (for an already pruned input)."""
    kept = meta.get("kept_heads")
    if isinstance(kept, dict) and len(kept) == len(heads):
        mapped = [list(kept.get(str(i), [])) for i in range(len(heads))]
        if all(len(m) == h for m, h in zip(mapped, heads, strict=True)):
            return mapped
    return [list(range(h)) for h in heads]


def load_tokenizer(path: Path) -> Any:
    from compression.hf_io import load_tokenizer as _load

    return _load(path)


@register(PruneHeadsConfig)
def prune_heads(src: Artifact, cfg: PruneHeadsConfig, out_dir: Path, ctx: Context) -> Artifact:
    from compression.hf_io import attention_layers, count_params, load_model, save_model

    ctx.progress(0.0, "loading model")
    model = load_model(src.path)
    try:
        handles = attention_layers(model)
    except ValueError as exc:
        raise TechniqueError(str(exc)) from exc
    heads = [h.num_heads for h in handles]
    counts = plan_counts(cfg.fraction, heads)
    params_before = count_params(model)
    importance = None
    if cfg.method == "importance":
        texts, labels = list(ctx.train_texts), list(ctx.train_labels)
        if not texts or len(texts) != len(labels):
            raise TechniqueError("importance pruning needs labeled training texts; none were given")
        n_labels = int(model.config.num_labels)
        if any(not 0 <= int(y) < n_labels for y in labels):
            raise TechniqueError(f"training labels must be class indices 0..{n_labels - 1} for this model")
        tokenizer = load_tokenizer(src.path)
        max_length = int(src.meta.get("max_length", 128))
        report = lambda f, m: ctx.progress(0.1 + 0.7 * f, m)
        if cfg.steps > 1:
            remove, importance = iterative_choice(model, tokenizer, texts, labels, counts, cfg, max_length, report)
        else:
            importance = head_importance(model, tokenizer, texts, labels, cfg, max_length, report)
    if importance is None or cfg.steps == 1:
        remove = choose_heads(heads, counts, cfg.method, cfg.seed, importance)
    original = _original_indices(src.meta, heads)
    prune_model(model, remove)
    pruned_before = src.meta.get("pruned_heads") or {}
    pruned = {}
    kept = {}
    for layer, drop in enumerate(remove):
        before = [int(i) for i in pruned_before.get(str(layer), [])] if isinstance(pruned_before, dict) else []
        pruned[str(layer)] = sorted(before + [original[layer][i] for i in drop])
        kept[str(layer)] = [original[layer][i] for i in range(heads[layer]) if i not in drop]
    ctx.progress(0.9, "saving pruned model")
    meta = save_model(model, out_dir)
    copy_tokenizer(src.path, out_dir)
    log.info("pruned %s heads: %s -> %s params", cfg.method, params_before, meta["param_count"])
    notes = list(src.meta.get("notes", []))
    if sum(counts) == 0:
        notes.append(f"{cfg.spec()}: {cfg.fraction:.0%} of {max(heads)} heads rounds to no head removed")
    ctx.progress(1.0, "pruned")
    return src.derive(
        out_dir,
        "hf",
        cfg.spec(),
        **meta,
        pruned_heads=pruned,
        kept_heads=kept,
        head_importance=importance,
        pruning_method=cfg.method if cfg.steps == 1 else f"iterative importance ({cfg.steps} rounds)",
        param_count_before_pruning=params_before,
        notes=notes,
    )
