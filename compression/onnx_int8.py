"""Technique "onnx-int8": dynamic int8 quantization of an ONNX model's weights with ONNX Runtime."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer
from compression.layer_names import canonical_layer_list, nodes_to_exclude, parse_layer_list
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_BYTES = 1_800_000_000
WEIGHT_TYPES = ("qint8", "quint8")


@dataclass(frozen=True)
class OnnxInt8Config(TechniqueConfig):
    name = "onnx-int8"
    label = "Dynamic int8 quantization (ONNX Runtime)"
    group = "quantization"
    help = (
        "Stores the weights of the matrix multiplications (and fused attention) as 8-bit integers with "
        "onnxruntime.quantization.quantize_dynamic; activations are quantized on the fly at run time. About 4x "
        "smaller weights and ~2x faster on this kind of CPU; predictions can change slightly."
    )
    accepts = ("onnx",)
    produces = "onnx"
    warning = (
        "The int8 speed-up depends on the CPU: int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX) gain "
        "most, plain AVX2 less; signed int8 weights ran ~1.7x faster than unsigned ones on the machine it was built on."
    )

    weight_type: str = field(
        default="qint8",
        metadata={
            "help": "qint8: signed 8-bit weights; quint8: unsigned 8-bit weights, measured ~1.7x slower than "
            "qint8 on the machine it was built on.",
            "choices": list(WEIGHT_TYPES),
        },
    )
    per_channel: bool = field(
        default=True,
        metadata={
            "help": "One scale per output channel instead of one per weight matrix: smaller errors (about half on "
            "MiniLM), measured as fast as per-tensor on this CPU."
        },
    )
    reduce_range: bool = field(
        default=False,
        metadata={
            "help": "Quantize weights to 7 bits, which avoids int16 saturation in non-VNNI int8 kernels for some "
            "models; on MiniLM here it doubled the logit error and did not change speed."
        },
    )

    exclude_layers: str = field(
        default="",
        metadata={
            "help": "Torch module names of Linear layers to keep in float, separated by + (or commas outside a "
            "spec string), e.g. bert.encoder.layer.3.attention.self.query+bert.encoder.layer.3.output.dense; "
            "the sensitivity map lists the most sensitive ones."
        },
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_layers", canonical_layer_list(self.exclude_layers))
        if self.weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type must be one of {', '.join(WEIGHT_TYPES)}, got {self.weight_type!r}")
        for name in ("per_channel", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")  # noqa: TRY004

    def check(self, meta: dict) -> None:
        if meta.get("quantized"):
            raise ValueError(f"the model is already quantized ({meta['quantized']}); quantizing twice is refused")
        if meta.get("half_precision"):
            raise ValueError(f"int8 quantization needs a float32 model; this one is {meta['half_precision']}")
        qat = meta.get("qat")
        if isinstance(qat, dict):
            if qat.get("target") != "onnx-int8":
                raise ValueError(f"the model was fine-tuned (qat) for {qat.get('target')}, whose int8 grid differs; "
                                 "use qat:target=onnx-int8 before onnx-int8")
            if self.weight_type != "qint8" or not self.per_channel or self.reduce_range:
                raise ValueError("the model was fine-tuned (qat) for signed per-channel 8-bit weights; keep "
                                 "weight_type=qint8, per_channel=true, reduce_range=false so they are reproduced")


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
    ctx.progress(0.3, "quantizing weights to int8")
    quantize_dynamic(
        str(prepared),
        str(out_dir / MODEL_FILE),
        weight_type=QuantType.QInt8 if cfg.weight_type == "qint8" else QuantType.QUInt8,
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
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
        onnx_int8={"weight_type": cfg.weight_type, "per_channel": cfg.per_channel, "reduce_range": cfg.reduce_range,
                   **({"excluded_layers": list(excluded_layers), "excluded_nodes": excluded} if excluded else {})},
        onnx_int8_ops=int8_ops,
    )
