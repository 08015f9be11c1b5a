"""Technique "torch-compile": the PyTorch model compiled with torch.compile (Inductor) when the predictor loads it."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from compression.artifact import MANIFEST, Artifact
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TorchCompileConfig(TechniqueConfig):
    name = "torch-compile"
    label = "torch.compile (PyTorch Inductor)"
    group = "serialization"
    help = (
        "Keeps the PyTorch weights and marks the model to be compiled with torch.compile when it is loaded: "
        "Inductor generates fused C++ kernels for this CPU. Compiling takes seconds to tens of seconds and is "
        "reported apart from loading (compile_time_s); the steady-state gain over eager PyTorch is usually modest "
        "on CPU."
    )
    accepts = ("hf",)
    produces = "hf"
    warning = (
        "Compilation happens in every new process (Inductor's on-disk cache shortens repeats) and, with "
        "dynamic=false, again for every new input shape (seconds each, more for bigger models): keep dynamic=true "
        "for real texts with dynamic padding; after 8 recompilations torch falls back to eager."
    )

    dynamic: bool = field(
        default=True,
        metadata={
            "help": "Compile once for any batch size and sequence length (symbolic shapes). False specialises "
            "to each shape seen: sometimes a little faster per call, but each new shape recompiles."
        },
    )
    mode: str = field(
        default="default",
        metadata={
            "help": "torch.compile mode: default; reduce-overhead (CUDA graphs on GPU, little effect on CPU); "
            "max-autotune-no-cudagraphs (benchmarks kernel choices: much longer compile).",
            "choices": list(MODES),
        },
    )

    def __post_init__(self) -> None:
        self.require_bools("dynamic")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def check(self, meta: dict) -> None:
        if meta.get("torch_compile"):
            raise TechniqueError("the model is already marked for torch.compile; compiling twice is refused")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link the (read-only in practice) weight files when possible: the artifact adds only a marker."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@register(TorchCompileConfig)
def mark_for_compile(src: Artifact, cfg: TorchCompileConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write the source's files (weights, config, tokenizer) plus the ``torch_compile`` marker into ``out_dir``."""
    ctx.progress(0.1, "copying the PyTorch weights")
    for item in Path(src.path).iterdir():
        if item.name == MANIFEST:
            continue
        if item.is_dir():
            shutil.copytree(item, out_dir / item.name)
        else:
            _link_or_copy(item, out_dir / item.name)
    ctx.progress(1.0, "marked for torch.compile at load")
    return src.derive(out_dir, "hf", cfg.spec(), torch_compile={"dynamic": cfg.dynamic, "mode": cfg.mode})


def compile_model(model, settings: dict, examples: list[dict]):
    """``torch.compile`` the model and run each encoded example once so compilation happens now (a batch of 2 and a
    batch of 1: torch specialises size 1 even with dynamic shapes); returns (compiled model, seconds)."""
    import time

    import torch

    compiled = torch.compile(model, dynamic=bool(settings.get("dynamic", True)), mode=settings.get("mode") or None)
    start = time.perf_counter()
    with torch.inference_mode():
        for example in examples:
            compiled(**{k: torch.from_numpy(v) for k, v in example.items()})
    return compiled, time.perf_counter() - start
