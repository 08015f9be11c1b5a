"""Technique "openvino": convert a PyTorch or ONNX classifier to an fp32 OpenVINO IR (model.xml + model.bin)."""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from compression.artifact import Artifact, copy_tokenizer
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
OUTPUT_NAME = "logits"
CHECK_ATOL = 1e-3  # as compression.onnx_export: fp32 conversions agree to ~1e-5; above this a note is recorded
# OpenVINO element types that store weights in fewer than 32 bits (int8 weights, their zero points, 16-bit scales).
LOW_PRECISION = ("i8", "u8", "i4", "u4", "f16", "bf16")


@dataclass(frozen=True)
class OpenVinoConfig(TechniqueConfig):
    name: ClassVar[str] = "openvino"
    label: ClassVar[str] = "OpenVINO IR (fp32)"
    group: ClassVar[str] = "serialization"
    help: ClassVar[str] = (
        "Converts the model with openvino.convert_model (from the PyTorch model by tracing, or from an ONNX "
        "export) and saves an OpenVINO IR (model.xml graph + model.bin weights, kept in float32) with dynamic batch "
        "and sequence dimensions. It runs on OpenVINO's CPU plugin (oneDNN kernels, its own graph fusions) instead "
        "of PyTorch or ONNX Runtime, with the thread count fixed, one stream and the latency hint; loading needs only "
        "openvino (no torch import). Predictions should match the original to ~1e-5. Follow it with openvino-int8 "
        "to quantize."
    )
    accepts: ClassVar[tuple[str, ...]] = ("hf", "onnx")
    produces: ClassVar[str] = "openvino"
    warning: ClassVar[str | None] = (
        "OpenVINO compiles the graph for this CPU each time the model loads, so load time includes that "
        "compilation. Its CPU plugin would run float32 models in bf16 on CPUs with AMX or AVX512-BF16; the engine "
        "asks for float32 inference so the figures stay fp32 on every CPU. Converting from PyTorch traces the "
        "model on two example texts: control flow that depends on the input's values is frozen as traced (the "
        "conversion is checked against PyTorch on those texts)."
    )

    def check(self, meta: dict) -> None:
        if meta.get("quantized"):
            raise ValueError(
                f"openvino converts a float32 model; this one is already quantized "
                f"({meta['quantized']}): convert first, then quantize with openvino-int8"
            )
        if meta.get("half_precision"):
            raise ValueError(f"openvino converts a float32 model; this one is {meta['half_precision']}")


def ir_stats(xml: Path) -> dict[str, Any]:
    """Operator counts of an IR, and its Constants by element type (how many, how many bytes): int8 shows here."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    ops = collections.Counter(op.get_type_name() for op in model.get_ops())
    consts: dict[str, dict[str, int]] = {}
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            et = op.get_output_element_type(0)
            entry = consts.setdefault(et.get_type_name(), {"count": 0, "bytes": 0})
            entry["count"] += 1
            entry["bytes"] += int(op.get_byte_size())
    return {"ops": dict(sorted(ops.items())), "constants": dict(sorted(consts.items()))}


def save_ir(model: Any, out_dir: Path) -> None:
    """Name the output, make batch and sequence dynamic, save without fp16 compression (weights stay fp32)."""
    import openvino as ov

    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    model.reshape({inp.get_any_name(): ov.PartialShape([-1, -1]) for inp in model.inputs})
    ov.save_model(model, str(out_dir / MODEL_XML), compress_to_fp16=False)


def ir_logits(xml: Path, features: dict[str, np.ndarray]) -> np.ndarray:
    """Logits of an IR on one thread (the engine's predictor settings), for the conversion checks."""
    import openvino as ov

    from compression.predictors import openvino_config

    compiled = ov.Core().compile_model(str(xml), "CPU", openvino_config(1))
    names = [p.get_any_name() for p in compiled.inputs]
    ids = features["input_ids"]
    out = compiled({n: features[n] if n in features else np.zeros_like(ids) for n in names})
    return np.asarray(out[0], dtype=np.float32)


def _from_torch(src: Artifact, out_dir: Path) -> tuple[float, tuple[str, ...]]:
    """Trace the hf model (logits only, positional inputs) with OpenVINO's PyTorch frontend; max |diff| vs torch."""
    import openvino as ov
    import torch

    from compression.torch_wrap import example_inputs, input_names, load_hf_model, logits_module

    names = input_names(src.path, src.meta)
    wrapper = logits_module(load_hf_model(src.path), names)
    args = example_inputs(src.path, names)
    chatter = io.StringIO()  # the tracer prints warnings about frozen control flow; logged at debug level
    with torch.no_grad(), contextlib.redirect_stdout(chatter):
        model = ov.convert_model(wrapper, example_input=args, input=[ov.PartialShape([-1, -1])] * len(names))
        want = wrapper(*args).float().numpy()
    log.debug("openvino.convert_model: %s", chatter.getvalue())
    got_names = tuple(inp.get_any_name() for inp in model.inputs)
    if got_names != names:
        raise TechniqueError(f"OpenVINO conversion gave inputs {got_names}, expected {names}")
    save_ir(model, out_dir)
    got = ir_logits(out_dir / MODEL_XML, {n: a.numpy() for n, a in zip(names, args, strict=True)})
    return float(np.abs(got - want).max()), names


def _from_onnx(src: Artifact, out_dir: Path) -> tuple[float, tuple[str, ...]]:
    """Read the ONNX graph with OpenVINO's ONNX frontend; max |diff| vs ONNX Runtime on the example texts."""
    import openvino as ov

    from compression.predictors import OnnxPredictor
    from compression.torch_wrap import EXAMPLE_TEXTS

    model = ov.convert_model(str(src.path / "model.onnx"))
    names = tuple(inp.get_any_name() for inp in model.inputs)
    save_ir(model, out_dir)
    ort = OnnxPredictor(src, 1)
    try:
        features = ort.encoder.encode(list(EXAMPLE_TEXTS))
        want = ort.run(features)
    finally:
        ort.close()
    got = ir_logits(out_dir / MODEL_XML, features)
    return float(np.abs(got - want).max()), names


@register(OpenVinoConfig)
def convert_openvino(src: Artifact, cfg: OpenVinoConfig, out_dir: Path, ctx: Context) -> Artifact:
    """Write ``model.xml``/``model.bin`` and the tokenizer into ``out_dir``."""
    import openvino as ov

    ctx.progress(0.1, f"converting the {'PyTorch' if src.format == 'hf' else 'ONNX'} model to OpenVINO")
    diff, names = (_from_torch if src.format == "hf" else _from_onnx)(src, out_dir)
    ctx.progress(0.9, "checked OpenVINO against the source runtime")
    notes = list(src.meta.get("notes", []))
    if diff > CHECK_ATOL:
        notes.append(f"OpenVINO output differs from the {src.format} model by up to {diff:.2g} on the check")
        log.warning("OpenVINO conversion differs from its %s source by %.3g", src.format, diff)
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "OpenVINO conversion done")
    return src.derive(
        out_dir,
        "openvino",
        cfg.spec(),
        model_inputs=list(names),
        openvino={"source_format": src.format, "openvino_version": ov.get_version(), "weights": "f32"},
        openvino_check_max_abs_diff=diff,
        notes=notes,
    )
