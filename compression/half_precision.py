"""Techniques "torch-fp16", "torch-bf16" and "onnx-fp16": weights stored and run in 16-bit floats."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.cpu import read_cpuinfo
from compression.registry import Context, TechniqueConfig, register

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
# Flags of x86 CPUs with native half-precision arithmetic (Linux /proc/cpuinfo names).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx_ne_convert")
FP16_FLAGS = ("avx512_fp16", "amx_fp16", "avx_ne_convert")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty when unreadable)."""
    return read_cpuinfo(path)[1]


def native_support(kind: str, flags: set[str] | None = None) -> list[str]:
    """The flags that give this CPU native ``kind`` ("bf16" or "fp16") arithmetic (empty: emulated)."""
    flags = cpu_flags() if flags is None else flags
    return sorted(flags & set(BF16_FLAGS if kind == "bf16" else FP16_FLAGS))


def _already(meta: dict) -> None:
    if meta.get("quantized"):
        raise ValueError(f"the model is already quantized ({meta['quantized']}); it cannot also be made half precision")
    if meta.get("half_precision"):
        raise ValueError(f"the model is already half precision ({meta['half_precision']})")


@dataclass(frozen=True)
class _TorchHalf(TechniqueConfig):
    dtype_name: ClassVar[str] = ""
    group: ClassVar[str] = "quantization"

    @classmethod
    def numeric_kind(cls, options=None) -> str | None:
        """Decided by the dtype the weights are cast to (``dtype_name``)."""
        return {"float16": "fp16", "bfloat16": "bf16"}.get(cls.dtype_name)
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"

    def check(self, meta: dict) -> None:
        _already(meta)


@dataclass(frozen=True)
class TorchFp16Config(_TorchHalf):
    name: ClassVar[str] = "torch-fp16"
    label: ClassVar[str] = "Half precision fp16 (PyTorch)"
    dtype_name: ClassVar[str] = "float16"
    help: ClassVar[str] = (
        "Casts every weight to IEEE float16 and stores them so (half the disk); the model is loaded and run in "
        "float16 by PyTorch. Logits move by ~1e-3; predictions rarely change."
    )
    warning: ClassVar[str | None] = (
        "CPUs without avx512_fp16/AMX-FP16 have no float16 arithmetic: PyTorch converts on the fly, so matrix "
        "products run several times slower than in float32 and the gap grows with the batch. Use it for disk, not "
        "for speed, unless this CPU lists avx512_fp16 or amx_fp16 (the run's latency shows what it does here)."
    )


@dataclass(frozen=True)
class TorchBf16Config(_TorchHalf):
    name: ClassVar[str] = "torch-bf16"
    label: ClassVar[str] = "Half precision bf16 (PyTorch)"
    dtype_name: ClassVar[str] = "bfloat16"
    help: ClassVar[str] = (
        "Casts every weight to bfloat16 (float32's range, 8 bits of mantissa) and stores them so (half the disk); "
        "the model is loaded and run in bfloat16 by PyTorch. Logits move by ~1e-2; predictions can change."
    )
    warning: ClassVar[str | None] = (
        "Fast only where oneDNN has bf16 kernels (CPU flags avx512_bf16 or amx_bf16); without them bf16 matrix "
        "products are emulated and several times slower than float32. With avx512_bf16 the dot products are native "
        "but conversions around the other operators remain, so the gain is smallest at batch 1; peak RAM can exceed "
        "float32's while both copies exist during loading."
    )


@dataclass(frozen=True)
class OnnxFp16Config(TechniqueConfig):
    name: ClassVar[str] = "onnx-fp16"
    label: ClassVar[str] = "Half precision fp16 (ONNX Runtime)"
    group: ClassVar[str] = "quantization"
    help: ClassVar[str] = (
        "Converts the ONNX graph's weights and arithmetic to float16 with onnxruntime.transformers.float16 "
        "(inputs and logits stay as they were). Half the disk; ONNX Runtime's CPU provider has few float16 "
        "kernels, so it inserts casts around the rest."
    )
    accepts: ClassVar[tuple[str, ...]] = ("onnx",)
    produces: ClassVar[str] = "onnx"
    numeric: ClassVar[str | None] = "fp16"
    warning: ClassVar[str | None] = (
        "ONNX Runtime's CPU provider has few float16 kernels and adds Cast nodes around the rest: it halves the "
        "disk, not the latency (the casts usually make it slower than the float32 graph)."
    )

    keep_layer_norm_fp32: bool = field(
        default=True,
        metadata={"help": "Keep LayerNormalization, Softmax and Gelu in float32 (casts around them): "
                  "more accurate, float16 range overflows avoided."},
    )

    def __post_init__(self) -> None:
        self.require_bools("keep_layer_norm_fp32")

    def check(self, meta: dict) -> None:
        _already(meta)


def _torch_half(src: Artifact, cfg: _TorchHalf, out_dir: Path, ctx: Context) -> Artifact:
    import torch

    from compression.hf_io import DTYPE_ATTR, load_model, save_model

    ctx.progress(0.1, "loading the PyTorch model")
    model = load_model(src.path)
    ctx.progress(0.5, f"casting the weights to {cfg.dtype_name}")
    model = model.to(getattr(torch, cfg.dtype_name))
    setattr(model.config, DTYPE_ATTR, cfg.dtype_name)
    meta = save_model(model, out_dir)
    copy_tokenizer(src.path, out_dir)
    kind = "bf16" if cfg.dtype_name == "bfloat16" else "fp16"
    native = native_support(kind)
    ctx.progress(1.0, "half precision done")
    note = f"weights stored and run in {cfg.dtype_name}; " + (
        f"this CPU lists {', '.join(native)}" if native else f"this CPU has no native {kind} arithmetic (emulated)"
    )
    return src.derive(
        out_dir, "hf", cfg.spec(), **meta, half_precision=cfg.name, torch_dtype=cfg.dtype_name,
        cpu_native_half=native, notes=[*src.meta.get("notes", []), note],
    )


@register(TorchFp16Config)
def torch_fp16(src: Artifact, cfg: TorchFp16Config, out_dir: Path, ctx: Context) -> Artifact:
    return _torch_half(src, cfg, out_dir, ctx)


@register(TorchBf16Config)
def torch_bf16(src: Artifact, cfg: TorchBf16Config, out_dir: Path, ctx: Context) -> Artifact:
    return _torch_half(src, cfg, out_dir, ctx)


@register(OnnxFp16Config)
def onnx_fp16(src: Artifact, cfg: OnnxFp16Config, out_dir: Path, ctx: Context) -> Artifact:
    """Write the float16 ``model.onnx`` (float32 inputs/outputs kept) and the tokenizer."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from compression.onnx_int8 import EXTERNAL_DATA_BYTES

    ctx.progress(0.1, "loading the ONNX graph")
    path = src.path / MODEL_FILE
    large = sum(p.stat().st_size for p in src.path.glob(MODEL_FILE + "*")) > EXTERNAL_DATA_BYTES
    model = onnx.load(str(path))
    del model.graph.value_info[:]  # stale exporter shape annotations (see onnx_int8._prepare)
    block: list[str] | None = None
    if cfg.keep_layer_norm_fp32:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

        block = [*DEFAULT_OP_BLOCK_LIST, "LayerNormalization", "SkipLayerNormalization", "Softmax", "Gelu",
                 "FastGelu", "BiasGelu"]
    ctx.progress(0.4, "converting to float16")
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    out = out_dir / MODEL_FILE
    onnx.save(half, str(out), save_as_external_data=large, location=MODEL_FILE + ".data" if large else None)
    copy_tokenizer(src.path, out_dir)
    ops = {n.op_type for n in half.graph.node}
    fp16_inits = sum(1 for t in half.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    ctx.progress(1.0, "float16 conversion done")
    native = native_support("fp16")
    note = "ONNX graph in float16; " + (
        f"this CPU lists {', '.join(native)}" if native else "this CPU has no native fp16 arithmetic"
    )
    log.debug("onnx-fp16: %d float16 initializers, %d Cast ops", fp16_inits, sum(
        1 for n in half.graph.node if n.op_type == "Cast"))
    return src.derive(
        out_dir, "onnx", cfg.spec(), half_precision="onnx-fp16", onnx_fp16_initializers=fp16_inits,
        onnx_fp16_casts="Cast" in ops, cpu_native_half=native, notes=[*src.meta.get("notes", []), note],
        onnx_fp16_size_bytes=os.path.getsize(out),
    )
