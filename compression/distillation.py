"""Response-based distillation into a shallower copy of the teacher (every other layer, as DistilBERT)."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.cpu import CpuInfo, detect
from compression.registry import Context, TechniqueConfig, TechniqueError, register
from compression.training import adamw_with_linear_decay, check_labeled, run_steps

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")


def student_layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layers the student starts from, evenly spread from the first (12 -> 6 gives 0, 2, ..., 10)."""
    if teacher_layers < 2:
        raise TechniqueError(
            f"distillation needs a teacher with at least 2 layers to make a shallower student; this one has "
            f"{teacher_layers}"
        )
    if not 1 <= student_layers < teacher_layers:
        raise TechniqueError(
            f"the student must have between 1 and {teacher_layers - 1} layers (the teacher has {teacher_layers}), "
            f"got {student_layers}"
        )
    return [i * teacher_layers // student_layers for i in range(student_layers)]


@dataclass(frozen=True)
class DistillConfig(TechniqueConfig):
    """A shallower student initialised from the teacher's layers, trained to match its softened logits."""

    name: ClassVar[str] = "distill"
    label: ClassVar[str] = "Distilled student (fewer layers)"
    group: ClassVar[str] = "architecture"
    help: ClassVar[str] = (
        "Builds a student with fewer transformer layers (every other teacher layer by default, as DistilBERT is "
        "initialised; embeddings and classifier copied) and trains it on the training split with "
        "alpha * KL(teacher || student) at temperature T (times T^2) + (1 - alpha) * cross-entropy."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = True
    warning: ClassVar[str | None] = "Trains a model: takes minutes on CPU (capped by max_steps)."

    layers: int = field(
        default=0, metadata={"help": "Student layers; 0 = half the teacher's (rounded down).", "min": 0}
    )
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the KL term.", "min": 0.0})
    alpha: float = field(
        default=0.5, metadata={"help": "Weight of the KL term (1 - alpha on CE).", "min": 0.0, "max": 1.0}
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the training split (capped by max_steps).", "min": 1})
    # Defaults sized for CPU: on 2 idle cores a step at batch 32 takes ~0.5 s for the 6-layer MiniLM default
    # (teacher forward + student forward/backward), so 300 steps take ~2.5 min (several times longer when the
    # machine is busy).
    max_steps: int = field(
        default=300, metadata={"help": "Maximum optimiser steps (caps the training time).", "min": 1}
    )
    batch_size: int = field(default=32, metadata={"help": "Training batch size.", "min": 1})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate (linear decay to 0).", "min": 0.0})
    seed: int = field(default=0, metadata={"help": "Seed for shuffling and dropout."})
    freeze_embeddings: bool = field(
        default=True,
        metadata={"help": "Keep the teacher's token embeddings fixed (much faster optimiser steps on CPU)."},
    )
    # Off by default: measured here, at one epoch (each text seen once) it took the same CPU time as the per-step
    # teacher pass (benchmarks/distill_speed.py); it can only pay off when texts repeat (epochs > 1).
    cache_teacher: bool = field(
        default=False,
        metadata={
            "help": "Compute the teacher's logits once, in length-sorted inference batches, before training "
            "(instead of a teacher forward pass inside every step)."
        },
    )

    precision: str = field(
        default="auto",
        metadata={
            "help": "Arithmetic of the training steps. auto: bf16 mixed precision (torch.autocast; weights and "
            "optimiser stay float32) on CPUs with native bf16 (AVX512-BF16, AMX-BF16), float32 elsewhere, where "
            "bf16 is emulated and slower; fp32 / bf16 force one. The saved student is float32 either way.",
            "choices": list(PRECISIONS),
        },
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.require_whole_numbers("layers", "epochs", "max_steps", "batch_size", "seed")
        self.require_bools("freeze_embeddings", "cache_teacher")
        for name in ("temperature", "alpha", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a number, got {v!r}")
        if self.layers < 0:
            raise ValueError(f"layers must be 0 (half the teacher) or a positive number, got {self.layers}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.lr <= 0:
            raise ValueError(f"lr must be above 0, got {self.lr}")
        for name in ("epochs", "max_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def resolved_precision(self, cpu: CpuInfo | None = None) -> tuple[str, str]:
        """(the training arithmetic on ``cpu``, this machine's by default; why)."""
        if self.precision != "auto":
            return self.precision, "set in the technique's options"
        cpu = cpu or detect()
        if cpu.native_bf16:
            return "bf16", "this CPU has native bf16 dot products, so bf16 mixed precision trains faster"
        return "fp32", "this CPU has no native bf16 arithmetic (bf16 would be emulated, slower than float32)"

    def build_salt(self) -> str:
        """The resolved training arithmetic: a student trained in bf16 is another artifact than one in float32."""
        return f"precision={self.resolved_precision()[0]}"

    def student_layers(self, teacher_layers: int) -> int:
        return self.layers or teacher_layers // 2

    def check(self, meta: dict[str, Any]) -> None:
        n = meta.get("num_layers")
        if isinstance(n, int):
            student_layer_indices(n, self.student_layers(n))


def make_student(teacher: Any, layers: list[int]) -> Any:
    """A deep copy of the teacher keeping only the given layers (embeddings, heads, classifier copied)."""
    import copy

    from torch import nn

    from compression.hf_io import encoder_layers

    student = copy.deepcopy(teacher)
    owner, blocks = encoder_layers(student)
    owner.layer = nn.ModuleList([blocks[i] for i in layers])
    for new_idx, block in enumerate(owner.layer):
        for module in block.modules():  # keep cache/layer bookkeeping consistent with the new positions
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    if hasattr(owner, "n_layers"):
        owner.n_layers = len(layers)
    student.config.num_hidden_layers = len(layers)
    return student


def distill_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)."""
    import torch.nn.functional as F

    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * kl * t * t + (1 - alpha) * F.cross_entropy(student_logits, labels)


def _remap_heads(meta: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """Carry per-layer pruning bookkeeping over to the student's layer numbering."""
    out = {}
    for key in ("pruned_heads", "kept_heads"):
        value = meta.get(key)
        if isinstance(value, dict):
            out[key] = {str(new): value.get(str(old), []) for new, old in enumerate(layers)}
    if isinstance(meta.get("head_importance"), list) and len(meta["head_importance"]) > max(layers):
        out["head_importance"] = [meta["head_importance"][i] for i in layers]
    return out


def _length_bucketed_batches(texts: list[str], batch_size: int, rng: random.Random, chunk: int = 50) -> list[list[int]]:
    """One epoch of seeded random batches of similar-length texts (less padding, so faster steps).

    Shuffle, sort by length within chunks of ``chunk`` batches, cut into batches, shuffle the batches.
    """
    order = list(range(len(texts)))
    rng.shuffle(order)
    batches = []
    span = chunk * batch_size
    for start in range(0, len(order), span):
        part = sorted(order[start : start + span], key=lambda i: len(texts[i]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _schedule(texts: list[str], batch_size: int, total: int, rng: random.Random) -> list[list[int]]:
    """The first ``total`` batches of consecutive length-bucketed epochs (the whole training order, up front)."""
    batches: list[list[int]] = []
    while len(batches) < total:
        batches += _length_bucketed_batches(texts, batch_size, rng)
    return batches[:total]


def teacher_logits(
    teacher: Any,
    tokenizer: Any,
    texts: list[str],
    indices: list[int],
    max_length: int,
    progress: Any = None,
    batch_size: int = 64,
    bf16: bool = False,
) -> dict[int, Any]:
    """The teacher's logits for ``texts[i]`` (i in ``indices``), by index, from length-sorted inference batches.

    The teacher is in eval mode, so its logits for a text never change during training: one inference-mode pass
    over length-sorted texts pads less and keeps no autograd state.
    """
    import torch

    from compression.hf_io import encode

    order = sorted(indices, key=lambda i: len(texts[i]))
    out: dict[int, Any] = {}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            logits = teacher(**encode(teacher, tokenizer, [texts[j] for j in part], max_length)).logits.float()
            out.update(zip(part, logits.clone().unbind(0), strict=True))
            if progress and (start // batch_size) % 10 == 0:
                progress(0.0, f"teacher logits: {min(start + batch_size, len(order))}/{len(order)} texts")
    return out


def train_student(
    student: Any,
    teacher: Any,
    tokenizer: Any,
    texts: list[str],
    labels: list[int],
    cfg: DistillConfig,
    max_length: int,
    progress: Any = None,
) -> dict[str, Any]:
    """Train ``student`` in place; returns training stats (steps, first/last loss, seconds)."""
    import torch

    from compression.hf_io import encode

    rng = random.Random(cfg.seed)
    precision, precision_reason = cfg.resolved_precision()
    bf16 = precision == "bf16"
    total = min(cfg.max_steps, cfg.epochs * math.ceil(len(texts) / cfg.batch_size))
    schedule_batches = _schedule(texts, cfg.batch_size, total, rng)
    if cfg.freeze_embeddings:
        # the word-embedding matrix is most of a small encoder's parameters: its dense gradient and AdamW update
        # are a large share of a CPU step, while distillation mainly needs to adapt the remaining layers
        student.get_input_embeddings().weight.requires_grad_(False)
    optimizer, schedule = adamw_with_linear_decay([p for p in student.parameters() if p.requires_grad], cfg.lr,
                                                  total)
    teacher.eval()
    start = time.perf_counter()
    cached = None
    if cfg.cache_teacher:
        cached = teacher_logits(
            teacher, tokenizer, texts, sorted({j for b in schedule_batches for j in b}), max_length, progress,
            bf16=bf16,
        )
    teacher_s = time.perf_counter() - start

    def loss_of(idx: list[int]) -> Any:
        inputs = encode(student, tokenizer, [texts[j] for j in idx], max_length)
        target = torch.tensor([int(labels[j]) for j in idx])
        # bf16: the forward passes run in bf16 under autocast; the loss, the gradients' accumulation into the
        # float32 weights and the optimiser step stay float32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if cached is not None:
                soft = torch.stack([cached[j] for j in idx])
            else:
                with torch.no_grad():
                    soft = teacher(**inputs).logits
            logits = student(**inputs).logits
        return distill_loss(logits.float(), soft.float(), target, cfg.temperature, cfg.alpha)

    stats = run_steps(student, schedule_batches, total, loss_of, optimizer, schedule, cfg.seed, "distilling", progress)
    return {**stats, "seconds": teacher_s + stats["seconds"], "teacher_s": teacher_s, "precision": precision,
            "precision_reason": precision_reason}


@register(DistillConfig)
def distill(src: Artifact, cfg: DistillConfig, out_dir: Path, ctx: Context) -> Artifact:
    from compression.hf_io import encoder_layers, load_model, load_tokenizer, save_model

    texts, labels = list(ctx.train_texts), list(ctx.train_labels)
    check_labeled(texts, labels, None, "distillation")  # before the teacher is loaded
    ctx.progress(0.0, "loading teacher")
    teacher = load_model(src.path)
    try:
        _, blocks = encoder_layers(teacher)
    except ValueError as exc:
        raise TechniqueError(str(exc)) from exc
    check_labeled(texts, labels, int(teacher.config.num_labels), "distillation")
    n_teacher = len(blocks)
    layers = student_layer_indices(n_teacher, cfg.student_layers(n_teacher))
    student = make_student(teacher, layers)
    for p in teacher.parameters():
        p.requires_grad_(False)
    tokenizer = load_tokenizer(src.path)
    max_length = int(src.meta.get("max_length", 128))
    stats = train_student(
        student, teacher, tokenizer, texts, labels, cfg, max_length, lambda f, m: ctx.progress(0.02 + 0.93 * f, m)
    )
    log.info("distilled %d -> %d layers in %.1f s (%d steps, %s)", n_teacher, len(layers), stats["seconds"],
             stats["steps"], stats["precision"])
    ctx.progress(0.97, "saving student")
    meta = save_model(student, out_dir)
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "distilled")
    note = (
        f"distilled {n_teacher} -> {len(layers)} layers ({stats['steps']} steps, distillation loss "
        f"{stats['loss_first']:.3f} -> {stats['loss_last']:.3f}); the teacher's own accuracy figures do not apply"
    )
    notes = [*src.meta.get("notes", []), note]
    return src.derive(
        out_dir,
        "hf",
        cfg.spec(),
        **meta,
        **_remap_heads(src.meta, layers),
        teacher_layers=n_teacher,
        student_layer_map=layers,
        distill_steps=stats["steps"],
        distill_loss_first=stats["loss_first"],
        distill_loss_last=stats["loss_last"],
        distill_time_s=stats["seconds"],
        distill_precision={"precision": stats["precision"], "reason": stats["precision_reason"],
                           "chosen": "cpu" if cfg.precision == "auto" else "user"},
        notes=notes,
    )
