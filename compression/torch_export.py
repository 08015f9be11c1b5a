"""Technique "torch-export": a torch.export program with dynamic batch and sequence length, saved as .pt2."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, register
from compression.torch_wrap import example_inputs, input_names, load_hf_model, logits_module, max_sequence, read_config

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt2"
CHECK_ATOL = 1e-4


@dataclass(frozen=True)
class TorchExportConfig(TechniqueConfig):
    name = "torch-export"
    label = "torch.export (.pt2)"
    group = "serialization"
    help = (
        "Captures the model as a torch.export ExportedProgram (the successor of TorchScript) with dynamic "
        "batch size and sequence length, saved with torch.export.save and run in PyTorch. Needs torch to load."
    )
    accepts = ("hf",)
    produces = "pt2"


def load_program(path: Path):
    """The saved program as a callable module."""
    import torch

    return torch.export.load(str(Path(path) / MODEL_FILE)).module()


@register(TorchExportConfig)
def export_program(src: Artifact, cfg: TorchExportConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write ``model.pt2`` and the tokenizer into ``out_dir``."""
    import torch

    ctx.progress(0.1, "loading the PyTorch model")
    model = load_hf_model(src.path)
    names = input_names(src.path, src.meta)
    wrapper = logits_module(model, names)
    args = example_inputs(src.path, names, max_length=64)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence", max=max_sequence(read_config(src.path)))
    ctx.progress(0.3, "exporting with torch.export")
    with torch.no_grad():
        program = torch.export.export(wrapper, args, dynamic_shapes=tuple({0: batch, 1: seq} for _ in names))
    torch.export.save(program, str(out_dir / MODEL_FILE))
    other = tuple(a[:1, : max(2, a.shape[1] - 3)] for a in args)
    with torch.inference_mode():
        diff = float((program.module()(*other) - wrapper(*other)).abs().max())
    if diff > CHECK_ATOL:
        raise RuntimeError(f"the exported program differs from the model on another input shape (max diff {diff:.3g})")
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "torch.export done")
    return src.derive(out_dir, "pt2", cfg.spec(), model_inputs=list(names), export_check_max_abs_diff=diff)
