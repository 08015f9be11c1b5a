"""Peak RAM of building and profiling a variant, estimated before any work, so a variant that cannot fit is refused
with the figures instead of being discovered by the OOM killer.

The estimate of one step is ``RUNTIME_BYTES + copies(technique) x parameters x BYTES_PER_PARAM``: the imports every
build process pays, plus the technique's peak working set counted in fp32 copies of the original model's weights.
A chain's estimate is its largest step (each step runs after the previous one has released its memory), and
profiling the result (a fresh process that loads it and predicts) is one more step. The copies come from
``benchmarks/ram_estimate.py``, which measures each build's high-water mark (``ru_maxrss``) on a bert-base-shaped
model; see ``COPIES`` for the figures and the machine they were measured on.
"""

from __future__ import annotations

from collections.abc import Sequence

from compression.errors import UserError

BYTES_PER_PARAM = 4  # every base model is stored and loaded as fp32
GIB = 2**30
MARGIN_BYTES = 1 * GIB  # kept free for the dashboard, the run's own process and the page cache

# Measured with benchmarks/ram_estimate.py on a bert-base-uncased-shaped preset (109.5M parameters, fp32 weights
# 0.41 GiB; 2-core AMD EPYC, 23 GiB, 2026-12-03): (build peak - runtime peak) / weight bytes, rounded up to the next
# 0.25 (the measured figure in the comment). Training techniques ran 2 steps at their default batch size (the peak is
# reached in the first step: weights, gradients, optimizer state). Checked on another size, BERT-large (335M
# parameters, the same benchmark with --preset bert-large-uncased): torch-int8 peaked at 2.40 GiB and the onnx export
# at 5.63 GiB (1.64 and 4.23 copies), under these estimates' 2.86 and 6.29 GiB.
RUNTIME_BYTES = int(0.36 * GIB)  # python + torch + transformers + onnxruntime + the registry: 0.353-0.355 GiB measured
COPIES: dict[str, float] = {
    "build-preset": 1.5,  # 1.34: a random-weight preset built and saved (profiling.inputs.models.build_preset)
    "onnx": 4.75,  # 4.72: the exporter holds the module, its traced program and the serialized graph
    "onnx-int8": 3.25,  # 3.22
    "onnx-static-int8": 6.75,  # 6.68 (examples=32): calibration sessions plus the QDQ graph
    "onnx-fp16": 5.25,  # 5.06
    "onnx-optimize": 6.75,  # 6.73 (mode=transformer)
    "openvino": 3.75,  # 3.51 (from the PyTorch model)
    "openvino-int8": 3.75,  # 3.73 (examples=32)
    "torch-int8": 2.0,  # 1.77
    "torchscript": 1.5,  # 1.45
    "torch-export": 1.5,  # 1.50
    "torch-compile": 0.25,  # 0.00: the build records the options; compiling happens in the profiling child
    "torch-fp16": 2.0,  # 1.83
    "torch-bf16": 2.0,  # 1.83
    "prune-heads": 1.75,  # 1.57 (fraction=0.5, random)
    "prune-magnitude": 3.5,  # 3.36
    "low-rank": 2.25,  # 2.07
    "distill": 4.5,  # 4.34 (4.05 at batch 16): teacher and student, the student's gradients and Adam moments
    "qat": 6.25,  # 6.24: fake-quantized copies, gradients and Adam's two moments
    "prune-movement": 11.5,  # 11.31: scores for every weight, with their own gradients and Adam moments
}
# The profiling child: load the variant and predict a batch of 32 (its format's runtime only).
PROFILE_COPIES: dict[str, float] = {"hf": 1.75, "onnx": 1.5}  # 1.58, 1.45
# A technique not in the table: the largest measured figure (never an optimistic guess).
UNKNOWN_COPIES = max([*COPIES.values(), 1.0])


class RamError(UserError):
    """A variant whose estimated peak RAM exceeds what is available; the message names both figures."""


def copies(technique: str) -> float:
    """The technique's peak working set in fp32 copies of the model's weights (see COPIES)."""
    return COPIES.get(technique, UNKNOWN_COPIES)


def step_estimate(parameters: int, technique: str) -> int:
    """Estimated peak bytes of the process that builds one ``technique`` step on a model of ``parameters``."""
    return int(RUNTIME_BYTES + copies(technique) * parameters * BYTES_PER_PARAM)


def profile_estimate(parameters: int, fmt: str) -> int:
    """Estimated peak bytes of the profiling child that loads a variant of format ``fmt`` and predicts."""
    return int(RUNTIME_BYTES + PROFILE_COPIES.get(fmt, max(PROFILE_COPIES.values(), default=1.0))
               * parameters * BYTES_PER_PARAM)


def chain_estimate(parameters: int, techniques: Sequence[str], final_format: str | None = "hf") -> int:
    """Estimated peak bytes of building the chain (its largest step) and profiling its result (of format
    ``final_format``; None: building only)."""
    steps = [step_estimate(parameters, t) for t in techniques]
    return max([*steps, *([profile_estimate(parameters, final_format)] if final_format else [])])


def available_bytes() -> int:
    """RAM available for a variant now: psutil's available memory minus MARGIN_BYTES."""
    import psutil

    return max(int(psutil.virtual_memory().available) - MARGIN_BYTES, 0)


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def refusal(parameters: int, techniques: Sequence[str], final_format: str | None = "hf",
            available: int | None = None) -> str | None:
    """Why the chain cannot be built here (estimate and available figure), or None when it fits."""
    need = chain_estimate(parameters, techniques, final_format)
    have = available_bytes() if available is None else int(available)
    if need <= have:
        return None
    worst = max(techniques, key=copies, default="profiling")
    what = " > ".join(techniques) if techniques else "the original model"
    return (f"{what} would need about {gib(need)} of RAM at its peak ({parameters / 1e6:.0f}M parameters x "
            f"{BYTES_PER_PARAM} bytes x {max([copies(t) for t in techniques] + [0]):.2f} copies for {worst}, plus "
            f"{gib(RUNTIME_BYTES)} of runtime), but only {gib(have)} is available here ({gib(MARGIN_BYTES)} kept "
            "free); refused before building it")


def check(parameters: int, techniques: Sequence[str], final_format: str | None = "hf",
          available: int | None = None) -> None:
    """RamError with :func:`refusal`'s message when the chain would not fit."""
    reason = refusal(parameters, techniques, final_format, available)
    if reason:
        raise RamError(reason)
