"""Technique "onnx-int8": dynamic int8 quantization of an ONNX model's weights with ONNX Runtime."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer
from compression.cpu import CpuInfo
from compression.int8_recipe import (
    AUTO,
    Int8Recipe,
    parse_auto_bool,
    reduce_range_field,
    refuse_unless_float32,
    resolve,
)
from compression.int8_reference import build_meta
from compression.layer_names import canonical_layer_list, exclude_layers_field, nodes_to_exclude, parse_layer_list
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_BYTES = 1_800_000_000
WEIGHT_TYPES = ("qint8", "quint8")


@dataclass(frozen=True)
class OnnxInt8Config(TechniqueConfig):
    name = "onnx-int8"
    numeric = "int8"
    label = "Dynamic int8 quantization (ONNX Runtime)"
    group = "quantization"
    help = (
        "Stores the weights of the matrix multiplications (and fused attention) as 8-bit integers with "
        "onnxruntime.quantization.quantize_dynamic; activations are quantized on the fly at run time. About 4x "
        "smaller weights and faster matrix products; predictions can change slightly. The weight type and "
        "reduce_range are chosen for the detected CPU (see the CPU advice) unless you set them."
    )
    accepts = ("onnx",)
    produces = "onnx"
    warning = (
        "The int8 speed-up depends on the CPU: int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX) gain "
        "most; without them the kernel adds product pairs into saturating int16, which the recipe chosen for such "
        "a CPU avoids (7-bit weights) at the cost of coarser weights."
    )

    weight_type: str = field(
        default=AUTO,
        metadata={
            "help": "auto: the detected CPU's choice (signed int8 weights, which every x86 int8 kernel takes "
            "fastest). qint8: signed 8-bit weights; quint8: unsigned 8-bit weights (the u8 x u8 kernel: never "
            "saturates, usually slower).",
            "choices": [AUTO, *WEIGHT_TYPES],
        },
    )
    per_channel: bool = field(
        default=True,
        metadata={
            "help": "One scale per output channel instead of one per weight matrix: smaller rounding errors, the "
            "same kernels."
        },
    )
    reduce_range: str = reduce_range_field()

    exclude_layers: str = exclude_layers_field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_layers", canonical_layer_list(self.exclude_layers))
        if self.weight_type not in (AUTO, *WEIGHT_TYPES):
            raise ValueError(f"weight_type must be one of auto, {', '.join(WEIGHT_TYPES)}, got {self.weight_type!r}")
        self.require_bools("per_channel")
        rr = parse_auto_bool(self.reduce_range, "reduce_range")
        object.__setattr__(self, "reduce_range", rr if rr == AUTO else str(rr).lower())

    def recipe(self, cpu: CpuInfo | None = None, meta: dict | None = None) -> Int8Recipe:
        """The recipe this config gets on ``cpu`` (this machine's by default); a qat model keeps its own grid."""
        qat = (meta or {}).get("qat")
        reduce_range: bool | str = parse_auto_bool(self.reduce_range, "reduce_range")
        if isinstance(qat, dict) and reduce_range == AUTO:
            reduce_range = bool(qat.get("reduce_range", False))  # reproduce the grid it was trained on
        return resolve(self.weight_type, reduce_range, cpu)

    def build_salt(self) -> str:
        """The resolved recipe, so an artifact built for another CPU's recipe is never reused from the cache."""
        r = self.recipe()
        return f"{r.weight_type}/rr={r.reduce_range}"

    def check(self, meta: dict) -> None:
        refuse_unless_float32(meta)
        qat = meta.get("qat")
        if isinstance(qat, dict):
            if qat.get("target") != "onnx-int8":
                raise ValueError(f"the model was fine-tuned (qat) for {qat.get('target')}, whose int8 grid differs; "
                                 "use qat:target=onnx-int8 before onnx-int8")
            trained_rr = bool(qat.get("reduce_range", False))
            recipe = self.recipe(meta=meta)
            if recipe.weight_type != "qint8" or not self.per_channel or recipe.reduce_range != trained_rr:
                bits = "7-bit (reduce_range)" if trained_rr else "8-bit"
                raise ValueError(f"the model was fine-tuned (qat) for signed per-channel {bits} weights; keep "
                                 "weight_type and reduce_range on auto and per_channel=true so they are reproduced")


def _prepare(src: Path, dst: Path) -> bool:
    """Copy the graph without ``value_info``: stale shape annotations from the exporter break quantize_dynamic."""
    import onnx

    large = sum(p.stat().st_size for p in src.parent.glob(src.name + "*")) > EXTERNAL_DATA_BYTES
    model = onnx.load(str(src))  # loads external weights too
    del model.graph.value_info[:]
    onnx.save(model, str(dst), save_as_external_data=large, location=dst.name + ".data" if large else None)
    return large


@register(OnnxInt8Config)
def quantize_onnx(src: Artifact, cfg: OnnxInt8Config, out_dir: Path, ctx: Context) -> Artifact:
    """Write the int8 ``model.onnx`` and the tokenizer into ``out_dir``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ctx.progress(0.1, "preparing the ONNX graph")
    prepared = out_dir / "prepared.onnx"
    large = _prepare(src.path / MODEL_FILE, prepared)
    excluded_layers = parse_layer_list(cfg.exclude_layers)
    try:
        excluded = nodes_to_exclude(onnx.load(str(prepared), load_external_data=False), excluded_layers)
    except ValueError as exc:
        raise TechniqueError(str(exc)) from exc
    recipe = cfg.recipe(meta=src.meta)
    ctx.progress(0.3, f"quantizing weights to int8 ({recipe.weight_type}, reduce_range={recipe.reduce_range})")
    quantize_dynamic(
        str(prepared),
        str(out_dir / MODEL_FILE),
        weight_type=QuantType.QInt8 if recipe.weight_type == "qint8" else QuantType.QUInt8,
        per_channel=cfg.per_channel,
        reduce_range=recipe.reduce_range,
        nodes_to_exclude=excluded or None,
        use_external_data_format=large,
        # Outputs of ORT's fused contrib ops (Attention, SkipLayerNormalization...) carry no inferred type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    for p in out_dir.glob(prepared.name + "*"):
        os.remove(p)
    copy_tokenizer(src.path, out_dir)
    ops = sorted({n.op_type for n in onnx.load(str(out_dir / MODEL_FILE), load_external_data=False).graph.node})
    int8_ops = [op for op in ops if op in ("MatMulInteger", "QAttention", "DynamicQuantizeMatMul", "QGemm")]
    if not int8_ops:
        raise RuntimeError("ONNX Runtime quantization produced no int8 operators")
    ctx.progress(1.0, "int8 quantization done")
    return src.derive(
        out_dir,
        "onnx",
        cfg.spec(),
        quantized="onnx-int8",
        onnx_int8={"weight_type": recipe.weight_type, "per_channel": cfg.per_channel,
                   "reduce_range": recipe.reduce_range,
                   **({"excluded_layers": list(excluded_layers), "excluded_nodes": excluded} if excluded else {})},
        **build_meta(src, recipe, out_dir, "QOperator (MatMulInteger, fused by ORT into DynamicQuantizeMatMul)"),
        onnx_int8_ops=int8_ops,
    )
