"""Exact integer arithmetic of a quantized ONNX graph (ONNX's numpy reference), to check ONNX Runtime's int8 kernels.

The reference evaluator computes MatMulInteger / QLinearMatMul / QuantizeLinear / DequantizeLinear with int32
accumulation in numpy: what int8 guarantees, independent of the CPU. ONNX Runtime's result on the same graph must
match it closely; where it does not, the CPU's kernel saturated (see compression.int8_recipe). Graphs with ONNX
Runtime's own fused operators (com.microsoft domain, e.g. QAttention) cannot be evaluated this way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# ORT (which fuses DynamicQuantizeLinear + MatMulInteger into one kernel) and the reference compute the activation
# scales in a different float order, which breaks a few rounding ties differently. Measured on the default MiniLM
# classifier (AVX2): such ties moved the logits by 0.4 % of their scale (unsigned weights, no saturation possible),
# saturation by 8 %. Beyond this share of the logit scale the difference is not rounding.
EXACT_RTOL = 5e-3
EXACT_ATOL = 1e-4
ROUNDING_STEPS = 3.0
PROBE_TEXTS = (
    "A wonderful, moving film with a great cast.",
    "Dull and far too long; the plot makes no sense.",
    "It was fine.",
    "I would not watch it again, although the music was lovely and the actors tried hard.",
)


def _gather_elements_op():
    from onnx.reference.op_run import OpRun

    class GatherElements(OpRun):
        """np.take_along_axis: onnx 1.23's reference GatherElements fails on more than 32 distinct indices."""

        def _run(self, data, indices, axis=None):
            axis = 0 if axis is None else int(axis)
            idx = np.where(indices < 0, indices + data.shape[axis], indices).astype(np.int64)
            shape = list(idx.shape)
            shape[axis] = data.shape[axis]
            view = data[tuple(slice(0, n) for n in shape)] if list(data.shape) != shape else data
            return (np.take_along_axis(view, idx, axis=axis),)

    return GatherElements


def exact_tolerance(model_path: Path, exact: np.ndarray) -> float:
    """How far ONNX Runtime may be from the exact result by rounding alone: float order, plus, for graphs with a
    quantized output (static QDQ), ``ROUNDING_STEPS`` output steps: ORT's fused requantization breaks some rounding
    ties differently from the reference, which moves a few logits by a step or two, where saturation moves nearly
    all of them by many steps (measured on the tiny test models: <= 2 steps on <= 2 of 27 logits vs >= 7 steps on
    >= 16 of 18)."""
    import onnx

    step = output_step(onnx.load(str(model_path), load_external_data=False))
    return EXACT_ATOL + EXACT_RTOL * float(np.abs(exact).max()) + ROUNDING_STEPS * step


def fused_ops(model: Any) -> list[str]:
    """Operators of ONNX Runtime's own domain, which the reference evaluator cannot run."""
    return sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")})


def reference_outputs(model_path: Path, features: Mapping[str, np.ndarray]) -> np.ndarray:
    """The first output of the graph evaluated by ONNX's numpy reference (exact integer arithmetic)."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(model_path))
    if ops := fused_ops(model):
        raise ValueError(f"the graph has ONNX Runtime fused operators ({', '.join(ops)}) the reference cannot run")
    names = [i.name for i in model.graph.input]
    evaluator = ReferenceEvaluator(model, new_ops=[_gather_elements_op()])
    return np.asarray(evaluator.run(None, _feed(names, features))[0], dtype=np.float32)


def _feed(names: Sequence[str], features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's inputs from the encoded features; one the tokenizer does not make (token_type_ids) is zeros."""
    ids = features["input_ids"]
    return {n: features[n] if n in features else np.zeros_like(ids) for n in names}


def ort_outputs(model_path: Path, features: Mapping[str, np.ndarray], threads: int = 1) -> np.ndarray:
    """The first output of the graph run by ONNX Runtime on this CPU (all graph optimizations on)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(None, _feed(names, features))[0], dtype=np.float32)


PASS_THROUGH = {"Add", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze", "Flatten", "QuantizeLinear"}


def output_step(model: Any) -> float:
    """The step of the quantizer on the graph's first output (0 when the output is not quantized, as in dynamic
    int8)."""
    from onnx import numpy_helper

    producers = {out: node for node in model.graph.node for out in node.output}
    inits = {t.name: t for t in model.graph.initializer}
    frontier, seen = [model.graph.output[0].name], set()
    while frontier:
        name = frontier.pop()
        node = producers.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type == "DequantizeLinear":
            scale = inits.get(node.input[1])
            return float(np.abs(numpy_helper.to_array(scale)).max()) if scale is not None else 0.0
        if node.op_type in PASS_THROUGH:
            frontier += [i for i in node.input if i and i not in inits]
    return 0.0


def kernel_check(
    folder: Path,
    texts: Sequence[str] = PROBE_TEXTS,
    model_file: str = "model.onnx",
    tokenizer_folder: Path | None = None,
    fp32_folder: Path | None = None,
) -> dict[str, Any]:
    """Whether ONNX Runtime's int8 result on this CPU matches the exact integer arithmetic of the same graph.

    ``exact``: within the rounding tolerance. ``saturated``: the kernel moved the logits further from the exact result
    than int8 rounding itself moved them from fp32 (``fp32_folder``'s graph), which rounding ties cannot do (measured:
    deviation / int8 error <= 0.65 without saturation, >= 1.4 with it, on MiniLM and a roberta-base shape) and
    int16 saturation does. Returns ``{"exact": None, "saturated": None, "skipped": reason}`` where the reference cannot
    run the graph.
    """
    from compression.tokenize import load_encoder

    path = Path(folder) / model_file
    features = load_encoder(Path(tokenizer_folder or folder)).encode(list(texts))
    try:
        exact = reference_outputs(path, features)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is recorded, never fatal
        return {"exact": None, "saturated": None, "skipped": str(exc)[:300]}
    got = ort_outputs(path, features)
    diff = float(np.abs(got - exact).max())
    tol = exact_tolerance(path, exact)
    int8_error = None
    if fp32_folder is not None and (Path(fp32_folder) / model_file).is_file():
        int8_error = float(np.abs(exact - ort_outputs(Path(fp32_folder) / model_file, features)).max())
    saturated = diff > tol and (int8_error is None or diff > int8_error)
    return {"exact": diff <= tol, "saturated": saturated, "max_abs_diff": diff, "tolerance": tol,
            "int8_error": int8_error, "logit_scale": float(np.abs(exact).max()), "texts": len(texts)}


def kernel_note(check: dict[str, Any]) -> str:
    """The note an artifact carries when ONNX Runtime's int8 kernel saturated on this CPU."""
    versus = f", more than int8 rounding itself ({check['int8_error']:.3g})" if check.get("int8_error") else ""
    return (
        f"ONNX Runtime's int8 kernel on this CPU moved the logits by up to {check['max_abs_diff']:.3g} from the exact "
        f"integer arithmetic of the same graph{versus}: its int16 pair sums saturated; 7-bit weights "
        "(reduce_range=true) or a CPU with VNNI avoid it"
    )


def build_meta(src: Any, recipe: Any, out_dir: Path, operator_format: str) -> dict[str, Any]:
    """The meta an ORT int8 build adds to its artifact: the recipe (with the CPU), this CPU's kernel check, and the
    source's notes plus a warning where the recipe or the kernel saturates here."""
    from compression.cpu import detect
    from compression.int8_recipe import saturation_warning

    notes = list(src.meta.get("notes", []))
    if warning := saturation_warning(recipe):
        notes.append(warning)
    check = kernel_check(out_dir, PROBE_TEXTS, tokenizer_folder=src.path, fp32_folder=src.path)
    if check.get("saturated"):
        notes.append(kernel_note(check))
    return {
        "int8_recipe": {**recipe.to_json(), "operator_format": operator_format, "cpu": detect().to_json()},
        "int8_kernel_check": check,
        "notes": notes,
    }
