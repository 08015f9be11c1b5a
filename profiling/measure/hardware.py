"""Advice before a technique this CPU cannot speed up (the CPU itself is read by compression.cpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compression.cpu import ISA_FLAGS, CpuInfo, detect, parse_cpuinfo, usable_threads

__all__ = ["ISA_FLAGS", "CpuInfo", "advice_for", "advice_lines", "detect", "parse_cpuinfo", "usable_threads"]

# ---- advice -----------------------------------------------------------------------------------------------------


def _kind(technique: str, options: Mapping[str, Any] | None) -> str | None:
    """Which numeric format a technique computes in, as its registry config declares ("int8", "bf16", "fp16" or
    None); None for a name the registry does not know."""
    import compression.techniques  # noqa: F401 - every technique registers itself
    from compression.registry import REGISTRY

    entry = REGISTRY.get(technique)
    return entry.config_cls.numeric_kind(options) if entry else None


def advice_for(technique: str, cpu: CpuInfo, options: Mapping[str, Any] | None = None) -> str | None:
    """A warning when ``cpu`` cannot speed up ``technique`` (its registry name; ``options`` its settings, e.g.
    ``{"dtype": "bf16"}``), or None when nothing needs saying. Follows detection, never assumptions."""
    kind = _kind(technique, options)
    if kind == "int8":
        if recipe_text := _recipe_advice(technique, cpu, options):
            return recipe_text
        if not cpu.has("avx2", "avx512f"):
            return (
                "This CPU reports neither AVX2 nor AVX-512: int8 kernels fall back to slow generic code, so int8 "
                "may not be faster than fp32 here; measure before relying on it."
            )
        if not cpu.vnni:
            return (
                "This CPU has no VNNI int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): int8 matrix "
                "products run as multi-instruction AVX2/AVX-512 sequences, so the speed-up over fp32 is smaller than "
                "on a CPU with VNNI (the smaller file and memory still count)."
            )
        return None
    if kind == "bf16":
        if not cpu.native_bf16:
            return (
                "This CPU has no native bf16 arithmetic (AVX512-BF16 or AMX-BF16): bf16 is emulated and usually much "
                "slower than fp32 here; only the halved file and memory remain."
            )
        if not cpu.has("amx_bf16"):
            return (
                "This CPU has AVX512-BF16 but no AMX-BF16: bf16 dot products are native but at best double the fp32 "
                "multiply-add rate, and conversions around other operators often eat that, so bf16 can still be "
                "slower than fp32 here; check the measured latency before choosing it for speed."
            )
        return None
    if kind == "fp16":
        if not cpu.native_fp16:
            conv = " F16C only converts between fp16 and fp32." if cpu.has("f16c") else ""
            return (
                "This CPU has no native fp16 arithmetic (AVX512-FP16 or AMX-FP16): fp16 compute is emulated or "
                "converted to fp32, so expect it slower, not faster; only the halved file and memory remain." + conv
            )
        return None
    return None


def _recipe_advice(technique: str, cpu: CpuInfo, options: Mapping[str, Any] | None) -> str | None:
    """For a technique whose int8 recipe depends on the CPU: a warning when the chosen options saturate here."""
    from compression.int8_recipe import saturation_warning
    from compression.registry import REGISTRY, TechniqueError, config_from_json

    if technique not in REGISTRY:
        return None
    cls = REGISTRY[technique].config_cls
    if not (hasattr(cls, "recipe") or hasattr(cls, "saturation_warning")):
        return None
    try:
        cfg = config_from_json({**(options or {}), "technique": technique})
    except TechniqueError:
        return None
    warning = saturation_warning(cfg.recipe(cpu)) if hasattr(cfg, "recipe") else cfg.saturation_warning(cpu)
    return f"This CPU's int8 kernel would saturate with these options: {warning}." if warning else None


def recipe_line(cpu: CpuInfo) -> str:
    """Which int8 recipe this CPU gets, in one line (the Run page and the CLI show it)."""
    from compression.int8_recipe import default_recipe
    from compression.openvino_int8 import overflow_fix_for

    r = default_recipe(cpu)
    bits = "7-bit" if r.reduce_range else "8-bit"
    fix = overflow_fix_for(cpu)[0]
    ov_bits = "7-bit weights in every layer" if fix == "enable" else "7-bit weights in the first layer, 8-bit elsewhere"
    return (f"int8 recipe for this CPU: {bits} signed weights ({r.weight_type}, reduce_range={r.reduce_range}), "
            f"because {r.reason}; OpenVINO/NNCF int8: overflow_fix={fix} ({ov_bits})")


def advice_lines(techniques: list[str], cpu: CpuInfo) -> list[tuple[str, str]]:
    """(technique, warning) for each technique of the list that this CPU cannot speed up, each once."""
    out = []
    for name in dict.fromkeys(techniques):
        text = advice_for(name, cpu)
        if text:
            out.append((name, text))
    return out
