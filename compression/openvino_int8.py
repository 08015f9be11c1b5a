"""Technique "openvino-int8": NNCF int8 on an OpenVINO IR, calibrated post-training quantization or weight-only."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact, copy_tokenizer
from compression.cpu import CpuInfo, detect
from compression.int8_recipe import AUTO, int16_pairs, kernel_path, refuse_unless_float32
from compression.onnx_static_int8 import MAX_EXAMPLES, calibration_sample
from compression.openvino_export import LOW_PRECISION, MODEL_XML, ir_stats
from compression.registry import Context, TechniqueConfig, TechniqueError, register

log = logging.getLogger(__name__)

MODES = ("ptq", "weights")
PRESETS = ("mixed", "performance")
OVERFLOW_FIXES = ("enable", "first_layer", "disable")  # what NNCF takes; the config also takes "auto"
INT8_TYPES = ("i8", "u8")


@dataclass(frozen=True)
class OpenVinoInt8Config(TechniqueConfig):
    name: ClassVar[str] = "openvino-int8"
    numeric: ClassVar[str | None] = "int8"
    label: ClassVar[str] = "int8 with NNCF (OpenVINO)"
    group: ClassVar[str] = "quantization"
    help: ClassVar[str] = (
        "Quantizes an OpenVINO IR with NNCF. mode=ptq (post-training quantization, nncf.quantize with the "
        "transformer model type): runs a seeded sample of the training split (never the test split) through the "
        "model to record activation ranges, then inserts FakeQuantize operations with fixed int8 scales on the "
        "inputs of the MatMuls and stores their weights as int8, which OpenVINO's CPU plugin runs as int8 kernels. "
        "mode=weights (nncf.compress_weights): stores the MatMul and embedding weights as 8-bit integers with a "
        "scale and zero point per output channel, decompressed to float32 at run time; activations stay float32, "
        "so it needs no data and mainly shrinks the file and memory."
    )
    accepts: ClassVar[tuple[str, ...]] = ("openvino",)
    produces: ClassVar[str] = "openvino"
    needs_train_data: ClassVar[bool] = True  # only for mode=ptq
    warning: ClassVar[str | None] = (
        "The ptq speed-up depends on the CPU: int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX) gain most. "
        "Without them, products of unsigned 8-bit activations and signed 8-bit weights are summed in pairs in 16 bits "
        "and can saturate; the default overflow_fix=auto avoids that on such CPUs by keeping weights to 7 bits, at "
        "the cost of one bit of weight precision, and keeps NNCF's 8-bit weights where VNNI or AMX accumulate in 32 "
        "bits. Fixed activation ranges clip outliers the calibration sample did "
        "not show. mode=weights adds a decompression step to every MatMul and need not be faster than float32; the "
        "engine keeps its activations float32 on every CPU (OpenVINO would otherwise quantize them on the fly on "
        "some CPUs)."
    )

    mode: str = field(
        default="ptq",
        metadata={
            "help": "ptq: weights and activations int8, calibrated on training texts; weights: int8 weights only, "
            "float32 activations, no data needed.",
            "choices": list(MODES),
        },
    )
    examples: int = field(
        default=128,
        metadata={
            "help": "Training texts in the calibration sample (seeded; ptq only), one text per calibration "
            "step so padding never enters the ranges.",
            "min": 1,
            "max": MAX_EXAMPLES,
        },
    )
    preset: str = field(
        default="mixed",
        metadata={
            "help": "ptq only: mixed (symmetric weights, asymmetric activations: NNCF's choice for transformers) "
            "or performance (both symmetric).",
            "choices": list(PRESETS),
        },
    )
    overflow_fix: str = field(
        default=AUTO,
        metadata={
            "help": "ptq only. CPUs without VNNI multiply unsigned 8-bit activations by signed 8-bit weights in pairs "
            "summed in 16 bits, which can saturate. auto: the detected CPU's choice, first_layer with VNNI or AMX "
            "(32-bit sums: nothing saturates), enable without; enable: 7-bit weights in every layer, so no CPU "
            "saturates and the same artifact computes the same integers on every CPU; first_layer (NNCF's "
            "default): 7-bit weights in the first layer only, 8-bit elsewhere, more precise on VNNI/AMX CPUs, "
            "saturating elsewhere; disable: 8-bit weights everywhere.",
            "choices": [AUTO, *OVERFLOW_FIXES],
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the calibration sample (ptq only)."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.overflow_fix not in (AUTO, *OVERFLOW_FIXES):
            raise ValueError(f"overflow_fix must be one of auto, {', '.join(OVERFLOW_FIXES)}, "
                             f"got {self.overflow_fix!r}")
        self.require_whole_numbers("examples", "seed")
        if not 1 <= self.examples <= MAX_EXAMPLES:
            raise ValueError(f"examples must be between 1 and {MAX_EXAMPLES}, got {self.examples}")

    def uses_train_data(self) -> bool:
        return self.mode == "ptq"

    def resolved_overflow_fix(self, cpu: CpuInfo | None = None) -> tuple[str, str]:
        """(the overflow fix NNCF gets on ``cpu``, this machine's by default; why)."""
        if self.overflow_fix != AUTO:
            return self.overflow_fix, "set in the technique's options"
        return overflow_fix_for(cpu or detect())

    def saturation_warning(self, cpu: CpuInfo) -> str | None:
        """A warning when the chosen overflow fix leaves 8-bit weights on a CPU whose int8 kernel saturates."""
        fix = self.resolved_overflow_fix(cpu)[0]
        kernel = kernel_path(cpu)
        if self.mode != "ptq" or fix == "enable" or not int16_pairs(kernel):
            return None
        where = "after the first layer" if fix == "first_layer" else "in every layer"
        return (f"overflow_fix={fix} keeps 8-bit weights {where} on a CPU without VNNI ({kernel}): OpenVINO's int8 "
                "kernel adds product pairs into saturating int16 here, so logits can move far more than int8 "
                "rounding explains; leave overflow_fix on auto")

    def build_salt(self) -> str:
        """The resolved overflow fix (ptq only), so an IR quantized for another CPU's choice is never reused."""
        return f"overflow_fix={self.resolved_overflow_fix()[0]}" if self.mode == "ptq" else ""

    def check(self, meta: dict) -> None:
        refuse_unless_float32(meta)
        if meta.get("qat"):
            raise ValueError(
                "the model was fine-tuned (qat) for ONNX Runtime's int8 grid, which NNCF's does not "
                "reproduce; use onnx > onnx-int8 after qat"
            )


def overflow_fix_for(cpu: CpuInfo) -> tuple[str, str]:
    """The overflow fix for ``cpu`` and why: OpenVINO's CPU plugin (oneDNN) takes the same int8 kernel family as
    ONNX Runtime's MLAS (compression.int8_recipe): int32 accumulation with VNNI / AMX, saturating int16 pair sums
    without."""
    kernel = kernel_path(cpu)
    if int16_pairs(kernel):
        return "enable", (f"{kernel} adds u8 x s8 product pairs into saturating int16: 7-bit weights in every layer "
                          "keep the sums exact")
    return "first_layer", (f"{kernel} accumulates u8 x s8 products in int32: NNCF's default (7-bit weights in the "
                           "first layer only, 8-bit elsewhere) loses no precision to the overflow fix")


def _calibration_feeds(src: Artifact, model: Any, sample: list[str]) -> list[dict[str, Any]]:
    """One feed per text (batch 1, no padding), keyed by the model's input names, tokenized once."""
    import numpy as np

    from compression.tokenize import load_encoder

    encoder = load_encoder(src.path)
    names = [inp.get_any_name() for inp in model.inputs]
    feeds = []
    for text in sample:
        enc = encoder.encode([text])
        feeds.append({n: enc[n] if n in enc else np.zeros_like(enc["input_ids"]) for n in names})
    return feeds


def _quantize(model: Any, feeds: list[dict[str, Any]], preset: str, overflow_fix: str) -> Any:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    fix = {"enable": OverflowFix.ENABLE, "first_layer": OverflowFix.FIRST_LAYER, "disable": OverflowFix.DISABLE}
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix[overflow_fix]),
    )


def _compress_weights(model: Any) -> Any:
    import nncf

    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    # Weight-only means float32 activations: the CPU plugin would quantize the activations of compressed-weight
    # MatMuls on the fly on some CPUs (group size 32 by default), so the same artifact would compute differently
    # from one machine to the next. compile_model reads these runtime options from the IR itself.
    model.set_rt_info("0", ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
    return model


@register(OpenVinoInt8Config)
def quantize_openvino(src: Artifact, cfg: OpenVinoInt8Config, out_dir: Path, ctx: Context) -> Artifact:
    """Write the int8 ``model.xml``/``model.bin`` and the tokenizer into ``out_dir``."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(src.path / MODEL_XML))
    info: dict[str, Any] = {"mode": cfg.mode, "nncf_version": nncf.__version__, "openvino_version": ov.get_version()}
    chatter = io.StringIO()  # NNCF prints progress bars and tables; keep the CLI's progress bar clean
    if cfg.mode == "ptq":
        if not ctx.train_texts:
            raise TechniqueError(
                "openvino-int8 (mode=ptq) needs training texts to calibrate on; none were given "
                "(mode=weights needs none)"
            )
        sample = calibration_sample(ctx.train_texts, cfg.examples, cfg.seed)
        ctx.progress(0.05, f"tokenizing {len(sample)} training texts for calibration")
        feeds = _calibration_feeds(src, model, sample)
        overflow_fix, why = cfg.resolved_overflow_fix()
        ctx.progress(0.1, f"calibrating and quantizing with NNCF on {len(sample)} training texts")
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            model = _quantize(model, feeds, cfg.preset, overflow_fix)
        info.update(
            preset=cfg.preset,
            overflow_fix=overflow_fix,
            overflow_fix_reason=why,
            overflow_fix_chosen="cpu" if cfg.overflow_fix == AUTO else "user",
            model_type="transformer",
            target_device="CPU",
            calibration_examples=len(sample),
            calibration_source="train split",
            calibration_sample_sha256=hashlib.sha256("\n".join(sample).encode()).hexdigest()[:16],
        )
    else:
        ctx.progress(0.1, "compressing weights to int8 with NNCF")
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            model = _compress_weights(model)
        info.update(
            weights="int8 asymmetric, per output channel", activations="float32", dynamic_quantization_group_size=0
        )
    log.debug("nncf: %s", chatter.getvalue())
    ctx.progress(0.9, "saving the int8 IR")
    ov.save_model(model, str(out_dir / MODEL_XML), compress_to_fp16=False)
    stats = ir_stats(out_dir / MODEL_XML)
    int8_constants = sum(stats["constants"].get(t, {}).get("count", 0) for t in INT8_TYPES)
    fake_quantize = stats["ops"].get("FakeQuantize", 0)
    if not int8_constants or (cfg.mode == "ptq" and not fake_quantize):
        raise RuntimeError(f"NNCF produced no int8 weights{' or FakeQuantize operations' if cfg.mode == 'ptq' else ''}")
    info.update(
        fake_quantize_ops=fake_quantize,
        int8_constants=int8_constants,
        low_precision_bytes={t: v["bytes"] for t, v in stats["constants"].items() if t in LOW_PRECISION},
    )
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "OpenVINO int8 done")
    return src.derive(out_dir, "openvino", cfg.spec(), quantized="openvino-int8", openvino_int8=info)
