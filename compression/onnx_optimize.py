"""Technique "onnx-optimize": ONNX Runtime's graph optimizers run offline on an ONNX model, written as a new
model.onnx (the transformer optimizer's fusions, or a graph optimization level), checked against the input graph."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_BYTES = 1_800_000_000
CHECK_ATOL = 1e-3  # as compression.onnx_export: fusions reorder float sums (~1e-6); above this the graph is wrong
MODES = ("auto", "transformer", "extended", "basic")
PROBE_TEXTS = ("a short probe sentence", "another probe sentence that is a little longer than the first one")


@dataclass(frozen=True)
class OnnxOptimizeConfig(TechniqueConfig):
    name: ClassVar[str] = "onnx-optimize"
    label: ClassVar[str] = "ONNX Runtime graph optimizer"
    group: ClassVar[str] = "serialization"
    help: ClassVar[str] = (
        "Runs ONNX Runtime's graph optimizers once, offline, and stores the optimized graph as a new model.onnx "
        "(same weights, same float32 arithmetic). transformer: onnxruntime.transformers.optimizer with the model's "
        "head count and width, which fuses attention, layer norms with their residual adds, GELU and the embedding "
        "layer norm (BERT-style encoders). extended / basic: the session's own optimization level, saved. The "
        "result is checked against the input graph on probe sentences. ONNX Runtime applies most of these fusions "
        "itself when it loads any model, so the gain is in load time and, for the attention fusion, latency."
    )
    accepts: ClassVar[tuple[str, ...]] = ("onnx",)
    produces: ClassVar[str] = "onnx"
    warning: ClassVar[str | None] = (
        "The fused operators (Attention, SkipLayerNormalization, FusedMatMul...) are ONNX Runtime's own: the "
        "optimized graph runs in ONNX Runtime only (not OpenVINO), and whether the fused attention is faster "
        "depends on the CPU."
    )

    mode: str = field(
        default="auto",
        metadata={
            "help": "auto: transformer where ORT's transformer optimizer knows the model type, else extended. "
            "transformer: ORT's transformer optimizer (BERT, RoBERTa, XLM-RoBERTa, CamemBERT graphs). "
            "extended: the session's extended level (node fusions, ORT contrib ops). basic: constant folding and "
            "redundant-node removal only (standard ONNX ops).",
            "choices": list(MODES),
        },
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def resolved_mode(self, meta: dict) -> str:
        """The mode run on a model described by ``meta`` (auto: transformer for the types ORT fuses)."""
        from compression.onnx_export import FUSABLE_TYPES

        if self.mode != "auto":
            return self.mode
        fusable = meta.get("model_type") in FUSABLE_TYPES and not meta.get("ort_optimized")
        return "transformer" if fusable else "extended"

    def check(self, meta: dict) -> None:
        from compression.onnx_export import FUSABLE_TYPES
        from compression.structure import display_name

        if self.mode == "transformer" and meta.get("model_type") not in FUSABLE_TYPES:
            raise ValueError(
                f"ONNX Runtime's transformer optimizer fuses {', '.join(FUSABLE_TYPES)} graphs, not "
                f"{display_name(meta.get('model_type'))}: use onnx-optimize:mode=extended"
            )
        if self.mode == "transformer" and meta.get("ort_optimized"):
            raise ValueError("the graph is already fused by ONNX Runtime's transformer optimizer")


def _session(path: Path, level: Any = None, save_to: Path | None = None, large: bool = False) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if level is not None:
        opts.graph_optimization_level = level
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
        if large:
            opts.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                          save_to.name + ".data")
            opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _logits(session: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    feeds = {i.name: features.get(i.name, np.zeros_like(features["input_ids"])) for i in session.get_inputs()}
    return session.run([session.get_outputs()[0].name], feeds)[0]


def _heads(meta: dict) -> tuple[list[int], int]:
    heads = [int(h) for h in meta.get("heads_per_layer") or []]
    hidden = int(meta.get("hidden_size") or 0)
    head_size = int(meta.get("head_size") or (hidden // heads[0] if heads and heads[0] and hidden else 0))
    return heads, head_size


@register(OnnxOptimizeConfig)
def optimize_onnx(src: Artifact, cfg: OnnxOptimizeConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write the optimized ``model.onnx`` and the tokenizer into ``out_dir``."""
    import onnxruntime as ort

    from compression.tokenize import load_encoder

    source = src.path / MODEL_FILE
    large = sum(p.stat().st_size for p in src.path.glob(MODEL_FILE + "*")) > EXTERNAL_DATA_BYTES
    out = out_dir / MODEL_FILE
    notes = list(src.meta.get("notes", []))
    stats: dict[str, int] = {}
    mode = cfg.resolved_mode(src.meta)
    if mode == "transformer":
        from compression.onnx_export import _fuse

        ctx.progress(0.1, "fusing the graph with ONNX Runtime's transformer optimizer")
        heads, head_size = _heads(src.meta)
        stats, fuse_notes = _fuse(source, out, heads, head_size, large)
        notes += fuse_notes
    else:
        level = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                 "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[mode]
        ctx.progress(0.1, f"optimizing the graph at ONNX Runtime's {mode} level")
        _session(source, level, save_to=out, large=large)
    ctx.progress(0.7, "checking the optimized graph against the input graph")
    features = load_encoder(src.path).encode(list(PROBE_TEXTS))
    try:
        diff = float(np.abs(_logits(_session(out), features) - _logits(_session(source), features)).max())
    except Exception as exc:  # the optimized graph does not run: say so, keep nothing
        raise TechniqueError(f"onnx-optimize ({mode}): the optimized graph does not run in ONNX Runtime: "
                             f"{exc}") from exc
    if not np.isfinite(diff) or diff > CHECK_ATOL:
        raise TechniqueError(f"onnx-optimize ({mode}) changed the outputs by up to {diff:.3g} on probe "
                             f"sentences (more than {CHECK_ATOL}): the optimized graph is refused")
    copy_tokenizer(src.path, out_dir)
    if (src.path / "config.json").is_file():
        shutil.copy2(src.path / "config.json", out_dir / "config.json")
    ctx.progress(1.0, "graph optimization done")
    return src.derive(out_dir, "onnx", cfg.spec(), notes=notes, onnx_optimize={"mode": mode, "fused_ops": stats},
                      onnx_optimize_max_abs_diff=diff, **({"ort_optimized": True, "ort_fused_ops": stats}
                                                           if mode == "transformer" else {}))
