"""Technique "onnx": export a PyTorch classifier to ONNX (run by ONNX Runtime), optionally fusing its graph."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, register
from compression.torch_wrap import (
    attention_heads,
    example_inputs,
    input_names,
    load_hf_model,
    logits_module,
    max_sequence,
    read_config,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
# Encoders whose attention/layer-norm pattern the ORT "bert" transformer optimizer fuses.
FUSABLE_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
# Above this many bytes of weights the ONNX protobuf (2 GiB limit) keeps its weights in a side file.
EXTERNAL_DATA_BYTES = 1_800_000_000
CHECK_ATOL = 1e-3


@dataclass(frozen=True)
class OnnxConfig(TechniqueConfig):
    name = "onnx"
    label = "ONNX export (ONNX Runtime)"
    group = "serialization"
    help = (
        "Exports the model with torch.onnx.export (the torch.export-based exporter) and runs it with ONNX "
        "Runtime instead of PyTorch. Loading needs only onnxruntime (no torch import), which saves seconds "
        "and hundreds of MiB. Predictions should match the original to ~1e-5."
    )
    accepts = ("hf",)
    produces = "onnx"

    optimize: bool = field(
        default=False,
        metadata={
            "help": "Also run ONNX Runtime's offline transformer optimizer (BERT/RoBERTa types), told the real head "
            "count and attention width, per layer after pruning: fuses attention into one Attention op (checked "
            "against PyTorch; the unfused graph is kept if the fused one differs). ONNX Runtime "
            "already fuses layer norms and GELU when it loads any model. Whether the fused graph (and a later int8 "
            "step on it, QAttention) is faster depends on the CPU: benchmarks/int8_recipes.py measures both."
        },
    )

    def __post_init__(self) -> None:
        self.require_bools("optimize")


def _export(wrapper, args: tuple, names: tuple[str, ...], path: Path, max_seq: int, large: bool, fuse: bool) -> str:
    """Export with the dynamo exporter (batch and sequence dynamic); fall back to the TorchScript one."""
    import contextlib
    import io

    import torch

    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence", max=max_seq)
    chatter = io.StringIO()  # the exporter prints its progress; keep the CLI's progress bar clean
    try:
        with contextlib.redirect_stdout(chatter):
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                input_names=list(names),
                output_names=["logits"],
                dynamic_shapes=tuple({0: batch, 1: seq} for _ in names),
                dynamo=True,
                external_data=large,
                # The exporter's own optimizer merges the mask's Unsqueeze pair, which hides the pattern ORT's
                # attention fusion looks for; ORT optimizes the graph itself when the session loads it.
                optimize=not fuse,
                verbose=False,
            )
        log.debug("torch.onnx.export: %s", chatter.getvalue())
        return "dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure: try the legacy path before giving up
        log.warning("dynamo ONNX export failed (%s); falling back to the TorchScript-based exporter", exc)
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    torch.onnx.export(
        wrapper, args, str(path), input_names=list(names), output_names=["logits"], dynamic_axes=axes, dynamo=False
    )
    return "torchscript"


def _fuse(raw: Path, out: Path, heads: list[int], head_size: int, large: bool) -> tuple[dict[str, int], list[str]]:
    """ORT transformer optimizer with the real head count and attention width (not the model width)."""
    from onnxruntime.transformers.optimizer import optimize_model

    notes = []
    per_layer = contextlib.nullcontext()
    if heads and len(set(heads)) == 1 and head_size:
        num_heads, hidden = heads[0], heads[0] * head_size
    elif heads and head_size:  # pruned unevenly: each layer's count is read from its own query weights
        num_heads, hidden = max(heads), max(heads) * head_size
        per_layer = _heads_from_query_weights(head_size)
    else:
        num_heads, hidden = 0, 0
        notes.append("attention head size unknown: ORT attention fusion may be partial")
    with per_layer:
        opt = optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden)
    stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(out), use_external_data_format=large)
    fused_attention = stats.get("Attention", 0) + stats.get("MultiHeadAttention", 0)
    if fused_attention < len(heads):
        notes.append(f"ORT fused attention in {fused_attention} of {len(heads)} layers")
    return stats, notes


@contextlib.contextmanager
def _heads_from_query_weights(head_size: int):
    """While active, ORT's attention fusion gives each fused layer the head count of its own query projection
    (width / head size). ORT would read it from the Q reshape, but transformers reshapes to (batch, seq, -1, head
    size), so it uses one count for every layer: silently wrong for a model pruned to different counts per layer."""
    import inspect
    import sys

    import onnxruntime.transformers.optimizer  # noqa: F401 - puts its folder on sys.path: "fusion_attention" too

    # ORT's optimizer imports its modules both as onnxruntime.transformers.X and as top-level X: patch the class
    # the optimizer really uses.
    module = sys.modules.get("fusion_attention")
    if module is None:
        import onnxruntime.transformers.fusion_attention as module
    FusionAttention = module.FusionAttention
    original = FusionAttention.create_attention_node
    signature = inspect.signature(original)

    def create(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        weight = self.model.get_initializer(bound.arguments["q_matmul"].input[1])
        width = int(weight.dims[-1]) if weight is not None and weight.dims else 0
        if width and width % head_size == 0:
            bound.arguments["num_heads"], bound.arguments["hidden_size"] = width // head_size, width
        return original(*bound.args, **bound.kwargs)

    FusionAttention.create_attention_node = create
    try:
        yield
    finally:
        FusionAttention.create_attention_node = original


def _check(path: Path, wrapper, args: tuple, names: tuple[str, ...]) -> float:
    """Largest absolute logit difference between ONNX Runtime and PyTorch on the example batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    feeds = {n: a.numpy() for n, a in zip(names, args, strict=True) if n in declared}
    got = session.run(["logits"], feeds)[0]
    with torch.inference_mode():
        want = wrapper(*args).numpy()
    return float(np.abs(got - want).max())


@register(OnnxConfig)
def export_onnx(src: Artifact, cfg: OnnxConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write ``model.onnx`` (fused when asked and supported) and the tokenizer into ``out_dir``."""
    import torch

    ctx.progress(0.05, "loading the PyTorch model")
    config = read_config(src.path)
    model_type = src.meta.get("model_type") or config.get("model_type")
    fuse = cfg.optimize and model_type in FUSABLE_TYPES
    notes = list(src.meta.get("notes", []))
    if cfg.optimize and not fuse:
        notes.append(f"ORT transformer optimizer skipped: not supported for model type {model_type!r}")
    # Eager attention: ORT's attention fusion only recognises its export; unfused, it runs as fast as SDPA's.
    model = load_hf_model(src.path, attn_implementation="eager")
    names = input_names(src.path, src.meta)
    wrapper = logits_module(model, names, additive_mask=fuse)
    args = example_inputs(src.path, names)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    out = out_dir / MODEL_FILE
    raw = out_dir / "exported.onnx" if fuse else out
    ctx.progress(0.2, "exporting to ONNX")
    with torch.inference_mode(False), torch.no_grad():
        exporter = _export(wrapper, args, names, raw, max_sequence(config), large, fuse)
    meta: dict[str, Any] = {"model_inputs": list(names), "onnx_exporter": exporter, "ort_optimized": False}
    if fuse:
        ctx.progress(0.6, "fusing the graph with ONNX Runtime's transformer optimizer")
        heads, head_size = attention_heads(model)
        stats, fuse_notes = _fuse(raw, out, heads, head_size, large)
        notes += fuse_notes
        meta.update(ort_optimized=True, ort_fused_ops=stats)
    ctx.progress(0.9, "checking ONNX Runtime against PyTorch")
    try:
        diff = _check(out, logits_module(model, names), args, names)  # against the model's own mask handling
    except Exception as exc:  # a fused graph ORT refuses to run: fall back below
        if not fuse:
            raise
        log.warning("the fused graph does not run in ONNX Runtime: %s", exc)
        diff = float("inf")
    if fuse:
        raw_diff = _check(raw, logits_module(model, names), args, names) if diff > CHECK_ATOL else diff
        if raw_diff < diff and diff > CHECK_ATOL:  # the fusion broke the graph: keep the unfused one
            what = "does not run" if diff == float("inf") else f"changed the outputs by up to {diff:.2g}"
            notes.append(f"the ORT-fused graph {what}: kept the unfused graph")
            log.warning("fused graph differs from torch by %.3g (unfused %.3g): keeping the unfused graph", diff, raw_diff)
            for p in out_dir.glob(out.name + "*"):
                p.unlink()
            if large:  # the graph names its weight file: save it again under the final name
                import onnx

                onnx.save(onnx.load(str(raw)), str(out), save_as_external_data=True, location=out.name + ".data")
            else:
                raw.rename(out)
            meta.update(ort_optimized=False, ort_fused_ops={}, ort_fusion_rejected_diff=diff)
            diff = raw_diff
        for p in out_dir.glob(raw.name + "*"):
            p.unlink()
    if diff > CHECK_ATOL:
        notes.append(f"ONNX output differs from PyTorch by up to {diff:.2g} on the export check")
        log.warning("ONNX export differs from torch by %.3g", diff)
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "ONNX export done")
    return src.derive(out_dir, "onnx", cfg.spec(), **meta, onnx_check_max_abs_diff=diff, notes=notes)
