"""Technique "torchscript": a traced TorchScript module (legacy serialization, deprecated in PyTorch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, register
from compression.torch_wrap import example_inputs, input_names, load_hf_model, logits_module

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
TRACE_ATOL = 1e-4


@dataclass(frozen=True)
class TorchScriptConfig(TechniqueConfig):
    name = "torchscript"
    label = "TorchScript (torch.jit.trace)"
    group = "serialization"
    help = (
        "Traces the model into a TorchScript graph (torch.jit.trace) saved with torch.jit.save; it loads "
        "without the model's Python code. Still needs torch. Can follow torch-int8 (a traced int8 model loads "
        "without building an fp32 copy first)."
    )
    accepts = ("hf", "torch-int8")
    produces = "torchscript"
    deprecated = (
        "torch.jit.trace and TorchScript are deprecated in PyTorch in favour of torch.export (see torch-export)."
    )


def trace_check(traced, eager, args: tuple) -> float:
    """Largest logit difference between traced and eager on a different batch size and sequence length."""
    import torch

    other = tuple(a[:1, : max(2, a.shape[1] - 3)] for a in args)
    with torch.inference_mode():
        return float((traced(*other) - eager(*other)).abs().max())


@register(TorchScriptConfig)
def trace_torchscript(src: Artifact, cfg: TorchScriptConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write the traced ``model.pt`` and the tokenizer into ``out_dir``."""
    import torch

    ctx.progress(0.1, "loading the PyTorch model")
    meta: dict = {}
    if src.format == "torch-int8":
        from compression.torch_int8 import LOAD_NOTE, load_int8_model

        model = load_int8_model(src.path)
        # The traced int8 graph loads directly: no fp32 copy at load any more.
        meta = {"load_builds_fp32_copy": False, "notes": [n for n in src.meta.get("notes", []) if n != LOAD_NOTE]}
    else:
        model = load_hf_model(src.path)
    names = input_names(src.path, src.meta)
    wrapper = logits_module(model, names)
    args = example_inputs(src.path, names, max_length=64)  # two texts of different lengths: real padding
    ctx.progress(0.4, "tracing with torch.jit.trace")
    with torch.inference_mode():
        traced = torch.jit.trace(wrapper, args, check_trace=False)
    diff = trace_check(traced, wrapper, args)
    if diff > TRACE_ATOL:
        raise RuntimeError(f"the traced model does not generalise to other input shapes (max diff {diff:.3g})")
    torch.jit.save(traced, str(out_dir / MODEL_FILE))
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "TorchScript trace done")
    return src.derive(
        out_dir, "torchscript", cfg.spec(), model_inputs=list(names), trace_check_max_abs_diff=diff, **meta
    )
