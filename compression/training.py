"""The optimiser loop the training techniques share (distillation, quantization-aware training, movement pruning).

Each technique says what one step's loss is; this module owns the rest: AdamW with a linear decay to zero, gradient
clipping, seeded dropout that leaves the caller's RNG alone, denormal flushing, progress and the loss summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from compression.registry import TechniqueError

Progress = Callable[[float, str], None]


def check_labeled(texts: Sequence[str], labels: Sequence[int], n_labels: int | None, what: str) -> None:
    """TechniqueError unless there are training texts, one label each, and (``n_labels`` given: the model's class
    count) every label a class index of the model."""
    if not texts or len(texts) != len(labels):
        raise TechniqueError(f"{what} needs labeled training texts; none were given")
    if n_labels is not None and any(not 0 <= int(y) < n_labels for y in labels):
        raise TechniqueError(f"training labels must be class indices 0..{n_labels - 1} for this model")


def adamw_with_linear_decay(groups: Sequence[Any], lr: float, total: int) -> tuple[Any, Any]:
    """AdamW over ``groups`` (parameters or param-group dicts) and its schedule, decaying ``lr`` to 0 at ``total``."""
    import torch

    optimizer = torch.optim.AdamW(list(groups), lr=lr, foreach=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    return optimizer, schedule


def run_steps(
    model: Any,
    batches: Iterable[list[int]],
    total: int,
    loss_of: Callable[[list[int]], Any],
    optimizer: Any,
    schedule: Any,
    seed: int,
    what: str,
    progress: Progress | None = None,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on the first ``total`` index batches of ``batches`` (``loss_of(batch)`` gives each
    step's loss); returns the steps taken, the mean loss of the first and of the last few steps, and the seconds."""
    import torch

    params = [p for group in optimizer.param_groups for p in group["params"]]
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    # Adam's second-moment estimates decay into denormal floats, which slow CPU arithmetic down many times over
    flushing = torch.set_flush_denormal(True)
    try:
        with torch.random.fork_rng(devices=[]):  # seeded dropout without disturbing the caller's RNG
            torch.manual_seed(seed)
            for idx in batches:
                if len(losses) >= total:
                    break
                if before_step:
                    before_step(len(losses))
                loss = loss_of(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                step = len(losses)
                if progress and (step == total or step % max(1, total // 50) == 0):
                    recent = sum(losses[-20:]) / len(losses[-20:])
                    progress(step / total, f"{what}: step {step}/{total}, loss {recent:.3f}")
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        model.eval()
    window = max(1, min(20, len(losses) // 4))  # mean of the first and last few batch losses
    head, tail = losses[:window] or [float("nan")], losses[-window:] or [float("nan")]
    return {
        "steps": len(losses),
        "loss_first": sum(head) / len(head),
        "loss_last": sum(tail) / len(tail),
        "seconds": time.perf_counter() - start,
    }
