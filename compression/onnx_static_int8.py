"""Technique "onnx-static-int8": static (calibrated) int8 quantization of an ONNX model in QDQ format."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
from compression.onnx_int8 import MODEL_FILE, _prepare
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("quint8", "qint8")
CALIBRATION_BATCH = 8
MAX_EXAMPLES = 2000


@dataclass(frozen=True)
class OnnxStaticInt8Config(TechniqueConfig):
    name: ClassVar[str] = "onnx-static-int8"
    numeric: ClassVar[str | None] = "int8"
    label: ClassVar[str] = "Static int8 quantization with calibration (ONNX Runtime, QDQ)"
    group: ClassVar[str] = "quantization"
    help: ClassVar[str] = (
        "Runs a seeded sample of the training split (never the test split) through the ONNX model to record the "
        "range of every activation, then stores int8 weights (signed, per channel) and fixed int8 activation "
        "scales as QuantizeLinear/DequantizeLinear pairs around each MatMul/Gemm (QDQ format; embedding tables "
        "int8 too), which ONNX Runtime fuses into int8 kernels. Unlike dynamic int8, activation ranges are not "
        "computed at run time."
    )
    accepts: ClassVar[tuple[str, ...]] = ("onnx",)
    produces: ClassVar[str] = "onnx"
    needs_train_data: ClassVar[bool] = True
    warning: ClassVar[str | None] = (
        "Calibration runs the model on the sample (entropy and percentile keep histograms of every activation: "
        "slower). Fixed activation ranges clip outliers a calibration sample did not show, so it is often "
        "no better than dynamic int8 on accuracy; its gain is skipping the run-time range computation."
    )

    method: str = field(
        default="minmax",
        metadata={
            "help": "How activation ranges come from the calibration sample: minmax (observed min/max), entropy "
            "(range minimising the KL divergence of the histogram), percentile (clip at the given percentile).",
            "choices": list(METHODS),
        },
    )
    examples: int = field(
        default=128,
        metadata={"help": "Training texts in the calibration sample (seeded).", "min": 1, "max": MAX_EXAMPLES},
    )
    activation_type: str = field(
        default="quint8",
        metadata={
            "help": "Activation integer type: quint8 (unsigned, asymmetric) or qint8 (signed, symmetric). Weights "
            "are always signed int8. x86 int8 kernels take unsigned activations times signed weights; signed "
            "activations have no fast path there and lose one bit of range for positive-only inputs, so quint8 "
            "is the default.",
            "choices": list(ACTIVATION_TYPES),
        },
    )
    percentile: float = field(
        default=99.999,
        metadata={"help": "Percentile kept by the percentile method (ignored by the others).", "min": 90.0,
                  "max": 100.0},
    )
    per_channel: bool = field(
        default=True, metadata={"help": "One weight scale per output channel instead of one per matrix."}
    )
    reduce_range: str = reduce_range_field()
    exclude_layers: str = exclude_layers_field()
    embeddings: bool = field(
        default=True,
        metadata={"help": "Also store the embedding tables (Gather) as int8, as dynamic int8 does: for small "
                  "encoders the embeddings are most of the file. Off: only MatMul/Gemm weights."},
    )
    pre_process: bool = field(
        default=True,
        metadata={"help": "Run ORT's quant_pre_process (symbolic shape inference and graph optimisation) first, as "
                  "ORT recommends; it changes where QDQ pairs go, not what they compute."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the calibration sample."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.activation_type not in ACTIVATION_TYPES:
            raise ValueError(
                f"activation_type must be one of {', '.join(ACTIVATION_TYPES)}, got {self.activation_type!r}"
            )
        self.require_whole_numbers("examples", "seed")
        if not 1 <= self.examples <= MAX_EXAMPLES:
            raise ValueError(f"examples must be between 1 and {MAX_EXAMPLES}, got {self.examples}")
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) or not 90 <= p <= 100:
            raise ValueError(f"percentile must be a number between 90 and 100, got {p!r}")
        self.require_bools("per_channel", "embeddings", "pre_process")
        object.__setattr__(self, "exclude_layers", canonical_layer_list(self.exclude_layers))
        rr = parse_auto_bool(self.reduce_range, "reduce_range")
        object.__setattr__(self, "reduce_range", rr if rr == AUTO else str(rr).lower())

    def recipe(self, cpu: CpuInfo | None = None) -> Int8Recipe:
        """The recipe this config gets on ``cpu`` (this machine's by default): weights are always signed."""
        return resolve("qint8", parse_auto_bool(self.reduce_range, "reduce_range"), cpu)

    def build_salt(self) -> str:
        """The resolved reduce_range, so an artifact built for another CPU's recipe is never reused."""
        return f"rr={self.recipe().reduce_range}"

    def check(self, meta: dict) -> None:
        refuse_unless_float32(meta, "static int8")


def calibration_sample(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """A seeded sample of ``n`` texts (all of them when fewer), in sampled order."""
    texts = list(texts)
    if not texts:
        raise TechniqueError("static int8 needs training texts to calibrate on; none were given")
    if n >= len(texts):
        return texts
    return random.Random(seed).sample(texts, n)


class CalibrationReader:
    """ORT CalibrationDataReader over batches of the sample; ``tokenized`` records every text it encoded.

    ORT is driven one batch at a time (``CalibStridedMinMax`` = 1 with ``set_range``): the calibrators then fold
    each batch into running ranges/histograms, so memory stays bounded and batches may differ in length.
    """

    def __init__(self, encoder: Any, texts: list[str], input_names: Sequence[str], progress: Any = None):
        self.encoder = encoder
        self.batches = [texts[i : i + CALIBRATION_BATCH] for i in range(0, len(texts), CALIBRATION_BATCH)]
        self.input_names = list(input_names)
        self.tokenized: list[str] = []
        self.progress = progress
        self._next, self._end = 0, len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.batches))

    def get_next(self) -> dict[str, Any] | None:
        import numpy as np

        if self._next >= self._end:
            return None
        batch = self.batches[self._next]
        self._next += 1
        self.tokenized += batch
        enc = self.encoder.encode(batch)
        if self.progress:
            self.progress(self._next / len(self.batches), f"calibrating: batch {self._next}/{len(self.batches)}")
        ids = enc["input_ids"]
        return {n: enc[n] if n in enc else np.zeros_like(ids) for n in self.input_names}


def _pre_process(src: Path, dst: Path) -> bool:
    """ORT's quant_pre_process (symbolic shape inference + graph optimisation); False when it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False, auto_merge=True)
        return True
    except Exception as exc:  # noqa: BLE001 - optional step: quantize the plain graph instead
        log.warning("quant_pre_process failed (%s); quantizing without it", exc)
        return False


@register(OnnxStaticInt8Config)
def quantize_static_onnx(src: Artifact, cfg: OnnxStaticInt8Config, out_dir: Path, ctx: Context) -> Artifact:
    """Write the QDQ int8 ``model.onnx`` and the tokenizer into ``out_dir``."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from compression.tokenize import load_encoder

    sample = calibration_sample(ctx.train_texts, cfg.examples, cfg.seed)
    ctx.progress(0.05, "preparing the ONNX graph")
    prepared = out_dir / "prepared.onnx"
    large = _prepare(src.path / MODEL_FILE, prepared)
    graph = onnx.load(str(prepared), load_external_data=False)
    try:
        excluded = nodes_to_exclude(graph, parse_layer_list(cfg.exclude_layers))
    except ValueError as exc:
        raise TechniqueError(str(exc)) from exc
    inputs = [i.name for i in ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()]
    reader = CalibrationReader(
        load_encoder(src.path), sample, inputs, lambda f, m: ctx.progress(0.1 + 0.75 * f, m)
    )
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[cfg.method]
    signed_act = cfg.activation_type == "qint8"
    extra: dict[str, Any] = {
        "DefaultTensorType": onnx.TensorProto.FLOAT,
        "ActivationSymmetric": signed_act,
        "WeightSymmetric": True,
        "CalibStridedMinMax": 1,  # one batch per collect_data call (see CalibrationReader)
    }
    if cfg.method == "percentile":
        extra["CalibPercentile"] = float(cfg.percentile)
    model_in = prepared
    if cfg.pre_process:
        ctx.progress(0.08, "ORT quantization pre-processing (shape inference, graph optimisation)")
        model_in = out_dir / "preprocessed.onnx"
        if not _pre_process(prepared, model_in):
            model_in = prepared
    recipe = cfg.recipe()
    ctx.progress(0.1, f"calibrating on {len(sample)} training texts ({cfg.method})")
    chatter = io.StringIO()  # the histogram calibrators print their progress; keep the CLI's progress bar clean
    with contextlib.redirect_stdout(chatter):
        quantize_static(
            str(model_in),
            str(out_dir / MODEL_FILE),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gemm", *(["Gather"] if cfg.embeddings else [])],
            per_channel=cfg.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=QuantType.QInt8 if signed_act else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded or None,
            use_external_data_format=large,
            calibrate_method=method,
            extra_options=extra,
        )
    log.debug("quantize_static: %s", chatter.getvalue())
    for scratch in (prepared.name, "preprocessed.onnx"):
        for p in out_dir.glob(scratch + "*"):
            os.remove(p)
    for p in out_dir.glob("augmented_model*.onnx*"):  # ORT's calibration scratch model, if left behind
        os.remove(p)
    copy_tokenizer(src.path, out_dir)
    ops = [n.op_type for n in onnx.load(str(out_dir / MODEL_FILE), load_external_data=False).graph.node]
    n_dq = ops.count("DequantizeLinear")
    if not n_dq:
        raise RuntimeError("ONNX Runtime static quantization inserted no QuantizeLinear/DequantizeLinear pairs")
    ctx.progress(1.0, "static int8 quantization done")
    digest = hashlib.sha256("\n".join(reader.tokenized).encode()).hexdigest()[:16]
    return src.derive(
        out_dir,
        "onnx",
        cfg.spec(),
        quantized="onnx-static-int8",
        onnx_static_int8={
            "method": cfg.method,
            "activation_type": cfg.activation_type,
            "per_channel": cfg.per_channel,
            "reduce_range": recipe.reduce_range,
            "calibration_examples": len(reader.tokenized),
            "calibration_source": "train split",
            "calibration_sample_sha256": digest,
            "excluded_layers": list(parse_layer_list(cfg.exclude_layers)),
            "excluded_nodes": excluded,
            "qdq_pairs": n_dq,
        },
        **build_meta(src, recipe, out_dir, "QDQ (QuantizeLinear/DequantizeLinear pairs, fused by ORT into int8 kernels)"),
    )
