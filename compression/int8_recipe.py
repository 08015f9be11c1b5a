"""Which int8 recipe a CPU gets (weight type, reduce_range), chosen from its flags, and why.

ONNX Runtime's int8 matrix products multiply uint8 activations by int8 weights. With VNNI (AVX512-VNNI, AVX-VNNI,
AMX-INT8) the products accumulate straight into int32. Without it, the AVX2 / AVX-512BW kernels use VPMADDUBSW,
which adds each pair of u8 x s8 products into a *saturating int16*: 2 x 255 x 127 = 64770 does not fit, so large
activations meeting large weights are clipped and the logits can move by far more than the rounding error (the
integer arithmetic is no longer exact). Two recipes avoid it without VNNI: 7-bit weights (``reduce_range``: |q| <= 64,
2 x 255 x 64 = 32640 fits) or unsigned weights (the u8 x u8 kernel widens to int16 before multiplying). Which of the
two is faster and more accurate is measured by ``benchmarks/int8_recipes.py``; the rule below follows those figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from compression.cpu import CpuInfo, detect

WeightType = Literal["qint8", "quint8"]
AUTO = "auto"


@dataclass(frozen=True)
class Int8Recipe:
    """One int8 recipe for ONNX Runtime, with the CPU path it was chosen for and the reason, per field."""

    weight_type: WeightType
    reduce_range: bool
    kernel: str  # "VNNI", "AVX-512 (no VNNI)", "AVX2 (no VNNI)" or "generic"
    reason: str
    forced: tuple[str, ...] = ()  # fields the user set instead of taking this CPU's choice

    def saturates(self) -> bool:
        """Whether this recipe's int16 pair sums can saturate on the CPU path it was chosen for."""
        return int16_pairs(self.kernel) and self.weight_type == "qint8" and not self.reduce_range

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "forced": list(self.forced), "saturates": self.saturates()}


def kernel_path(cpu: CpuInfo) -> str:
    """The int8 kernel family ONNX Runtime's MLAS picks on ``cpu``."""
    if cpu.vnni:
        return "VNNI"
    if cpu.has("avx512f"):
        return "AVX-512 (no VNNI)"
    if cpu.has("avx2"):
        return "AVX2 (no VNNI)"
    return "generic"


def int16_pairs(kernel: str) -> bool:
    """Whether the kernel adds u8 x s8 product pairs into saturating int16 (every path but VNNI)."""
    return kernel != "VNNI"


def default_recipe(cpu: CpuInfo) -> Int8Recipe:
    """The recipe this CPU gets when the user forces nothing."""
    kernel = kernel_path(cpu)
    if not int16_pairs(kernel):
        return Int8Recipe(
            "qint8", False, kernel,
            "VNNI accumulates u8 x s8 products in int32: full 8-bit signed weights are exact and fastest",
        )
    return Int8Recipe(
        "qint8", True, kernel,
        f"{kernel} adds u8 x s8 product pairs into saturating int16: 7-bit weights (reduce_range) keep the integer "
        "arithmetic exact while keeping the signed-weight kernel",
    )


def resolve(weight_type: str = AUTO, reduce_range: bool | str = AUTO, cpu: CpuInfo | None = None) -> Int8Recipe:
    """This CPU's recipe with the fields the user set (anything but ``auto``) taking their place."""
    cpu = cpu or detect()
    base = default_recipe(cpu)
    forced: list[str] = []
    wt: WeightType = base.weight_type
    if weight_type != AUTO:
        wt = weight_type  # type: ignore[assignment]
        forced.append("weight_type")
    if reduce_range == AUTO:
        # Unsigned weights go through the u8 x u8 kernel, which cannot saturate: keep their full 8 bits.
        rr = base.reduce_range if wt == "qint8" else False
    else:
        rr = bool(reduce_range)
        forced.append("reduce_range")
    reason = base.reason if not forced else f"{', '.join(forced)} set by the user; this CPU's choice: {base.reason}"
    recipe = Int8Recipe(wt, rr, base.kernel, reason, tuple(forced))
    return recipe


def saturation_warning(recipe: Int8Recipe) -> str | None:
    """A warning when a forced recipe can saturate on this CPU (the default never does)."""
    if not recipe.saturates():
        return None
    return (
        f"signed 8-bit weights without reduce_range on a CPU without VNNI ({recipe.kernel}): ONNX Runtime's kernel "
        "adds product pairs into saturating int16 here, so logits can move far more than int8 rounding explains; "
        "leave weight_type and reduce_range on auto"
    )


def parse_auto_bool(value: Any, name: str) -> bool | str:
    """``auto`` or a bool, from a config field that may hold either (or a stored true/false string)."""
    if value == AUTO or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name} must be auto, true or false, got {value!r}")


def refuse_unless_float32(meta: dict, what: str = "int8 quantization") -> None:
    """ValueError when the model is already quantized or half precision: ``what`` needs its float32 weights."""
    if meta.get("quantized"):
        raise ValueError(f"the model is already quantized ({meta['quantized']}); quantizing twice is refused")
    if meta.get("half_precision"):
        raise ValueError(f"{what} needs a float32 model; this one is {meta['half_precision']}")


def reduce_range_field() -> Any:
    """The ``reduce_range`` option of ONNX Runtime's int8 techniques: ``auto`` (this CPU's recipe) or forced."""
    return field(
        default=AUTO,
        metadata={
            "help": "Quantize signed weights to 7 bits (|q| <= 64). auto: on for CPUs without VNNI, whose kernel "
            "adds u8 x s8 product pairs into saturating int16 (7-bit weights cannot overflow it), off with VNNI "
            "(int32 accumulation: the extra bit is free). true/false force it.",
            "choices": [AUTO, "true", "false"],
        },
    )
