"""Where an int8 variant's gain comes from: its runtime (PyTorch fp32 -> ORT / OpenVINO fp32) or int8 (no streamlit)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from profiling.measure.stats import compare_intervals, latency_interval
from profiling.schema import VariantStatus

# Formats whose models run outside PyTorch, with the runtime's name.
RUNTIMES: dict[str, str] = {"onnx": "ONNX Runtime", "openvino": "OpenVINO"}
# Latency figures with a stored (or bootstrapped) interval: interval key -> metrics key of the median.
LATENCY_FIGURES: dict[str, str] = {"b1": "latency_b1_median_ms", "bN": "latency_bN_median_ms"}
COLUMNS = [
    "int8 variant",
    "Runtime",
    "Figure",
    "Compared",
    "PyTorch fp32 \u2192 runtime fp32",
    "Runtime fp32 \u2192 int8",
    "Total",
    "Share from the runtime",
]

EXPLANATION = (
    "Each int8 variant's gain over the PyTorch fp32 model it came from, split into the runtime step (PyTorch fp32 "
    "\u00f7 the same model in ONNX Runtime or OpenVINO, fp32) and the int8 step (fp32 \u00f7 int8 in that runtime): "
    "above 1\u00d7 is faster or smaller, the total is their product, and a latency step whose 95 % intervals "
    "overlap is within noise."
)
SHARE_HELP = (
    "The runtime's part of the total gain on a log scale (log runtime step \u00f7 log total); the rest comes from "
    "int8. Shown only when both steps are gains beyond noise."
)

@dataclass(frozen=True)
class Factor:
    """One step's gain: before / after (above 1 = faster or smaller), or what to add to the run to get it."""

    ratio: float | None = None
    verdict: str | None = None  # faster / slower / within noise, from the two 95 % intervals; None without them
    noisy: bool = False  # one of the two figures was measured while other processes took much of the CPU
    missing: str | None = None

    def text(self) -> str:
        if self.ratio is None:
            return self.missing or "\u2014"
        notes = [n for n in (self.verdict, "noisy measurement" if self.noisy else None) if n]
        return f"{self.ratio:.2f}\u00d7" + (f" ({', '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Split:
    """One figure of one int8 variant, split into its runtime step and its int8 step (total = their product)."""

    idx: int
    variant: str
    runtime: str  # "ONNX Runtime" or "OpenVINO"
    figure: str  # metrics key, or "workload:<label>" for a run's extra workloads
    label: str
    pytorch: str | None  # name of the PyTorch fp32 variant compared (None: not in the run)
    runtime_fp32: str | None  # name of the fp32 variant in the same runtime (None: not in the run)
    runtime_step: Factor
    int8_step: Factor
    total: Factor

    @property
    def runtime_share(self) -> float | None:
        """The runtime's share of the total gain on a log scale; None unless both steps are gains beyond noise."""
        r, q = self.runtime_step.ratio, self.int8_step.ratio
        if r is None or q is None or r <= 1 or q <= 1:
            return None
        if "within noise" in (self.runtime_step.verdict, self.int8_step.verdict):
            return None
        return math.log(r) / (math.log(r) + math.log(q))


@dataclass(frozen=True)
class _Plan:
    runtime: str
    pytorch: tuple[str, ...]  # step keys of the PyTorch fp32 model (() = the original)
    runtime_fp32: tuple[str, ...]  # step keys of the fp32 model in the runtime (the chain minus the int8 step)
    pytorch_spec: str
    runtime_spec: str


def _step(step: Any) -> tuple[str, Any]:
    """(a canonical key of one chain step, its registered config class or None). The key is the CLI spec with
    defaults left out, so ``{"technique": "onnx"}`` and a fully spelled-out onnx config match."""
    import compression  # noqa: F401  (registers every technique)
    from compression.registry import REGISTRY, TechniqueError, config_from_json, parse_spec

    if isinstance(step, str):  # a lineage entry (runs stored before chains were)
        name = step.partition(":")[0].strip()
        try:
            spec = parse_spec(step).spec()
        except (TechniqueError, TypeError, ValueError):  # an old or unknown spec: compare it as written
            spec = step.strip()
        tech = REGISTRY.get(name)
        return spec, tech.config_cls if tech else None
    if not isinstance(step, Mapping):
        return str(step), None
    name = str(step.get("technique", "?"))
    try:
        key = config_from_json(dict(step)).spec()
    except (TechniqueError, TypeError, ValueError):  # an old or unknown config: compare its JSON
        key = json.dumps(dict(step), sort_keys=True, default=str)
    tech = REGISTRY.get(name)
    return key, tech.config_cls if tech else None


def _chain(variant: Mapping[str, Any]) -> list[Any]:
    return list(variant.get("chain") or variant.get("lineage") or [])


def _is_runtime_int8(cls: Any) -> bool:
    """An int8 quantization step that takes and gives a model of a non-PyTorch runtime (its declared numeric kind tells
    it apart from the other such step, ONNX fp16)."""
    if cls is None or getattr(cls, "group", "") != "quantization":
        return False
    fmt = getattr(cls, "produces", "")
    return fmt in RUNTIMES and tuple(getattr(cls, "accepts", ())) == (fmt,) and cls.numeric_kind() == "int8"


def _plan(chain: Sequence[Any]) -> _Plan | None:
    """How to split a chain ending in a runtime int8 step; None for any other chain."""
    if not chain:
        return None
    steps = [_step(s) for s in chain]
    if not _is_runtime_int8(steps[-1][1]):
        return None
    fmt, last_hf = "hf", 0  # the PyTorch model is the longest prefix whose output is still a PyTorch model
    for i, (_, cls) in enumerate(steps[:-1]):
        if cls is None:
            return None
        fmt = cls.produces
        if fmt == "hf":
            last_hf = i + 1
    keys = tuple(k for k, _ in steps)
    runtime = RUNTIMES[steps[-1][1].produces]
    return _Plan(runtime, keys[:last_hf], keys[:-1], " > ".join(keys[:last_hf]), " > ".join(keys[:-1]))


def _figures(metrics: Mapping[str, Any], batch_size: int | None) -> dict[str, str]:
    n = f"b{batch_size}" if batch_size else "bN"
    out = {"latency_b1_median_ms": "Latency b1 median (ms)", "latency_bN_median_ms": f"Latency {n} median (ms)"}
    for w in metrics.get("workloads") or []:
        if isinstance(w, Mapping) and w.get("label"):
            out[f"workload:{w['label']}"] = f"{w['label']} (ms / batch)"
    out["disk_mib"] = "Disk (MiB)"
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _value(metrics: Mapping[str, Any], figure: str) -> float | None:
    if figure.startswith("workload:"):
        label = figure.partition(":")[2]
        w = next((w for w in metrics.get("workloads") or [] if isinstance(w, Mapping) and w.get("label") == label), {})
        return _num(w.get("ms_per_batch"))
    return _num(metrics.get(figure))


def _factor(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    figure: str,
    missing: tuple[str | None, str | None],
) -> Factor:
    """before / after of one figure, with the intervals' verdict for a latency median."""
    for metrics, why in ((before, missing[0]), (after, missing[1])):
        if metrics is None or _value(metrics, figure) is None:
            return Factor(missing=why)
    b, a = _value(before, figure), _value(after, figure)
    key = next((k for k, f in LATENCY_FIGURES.items() if f == figure), None)
    if key is None:
        return Factor(ratio=b / a)
    ci_b, ci_a = latency_interval(dict(before), key), latency_interval(dict(after), key)
    verdict = compare_intervals(ci_a[1:], ci_b[1:]) if ci_a and ci_b else None
    noisy = bool(before.get(f"latency_{key}_noisy") or after.get(f"latency_{key}_noisy"))
    return Factor(ratio=b / a, verdict=None if verdict == "unknown" else verdict, noisy=noisy)


def runtime_splits(variants: Sequence[Mapping[str, Any]], batch_size: int | None = None) -> list[Split]:
    """For every finished variant whose chain ends in int8 in ONNX Runtime or OpenVINO: per figure (latency b1 and
    bN medians, the run's extra workloads, disk size), the gain of the runtime step (PyTorch fp32 / runtime fp32),
    of the int8 step (runtime fp32 / int8) and the total (PyTorch fp32 / int8). A needed variant the run lacks gives,
    instead of a number, which variant to add; latency steps whose 95 % intervals overlap are "within noise"."""
    by_chain: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for v in variants:
        key = tuple(_step(s)[0] for s in _chain(v))
        if key not in by_chain or (v.get("status") == VariantStatus.DONE and by_chain[key].get("status") != VariantStatus.DONE):
            by_chain[key] = v  # the first finished variant of a chain, if a chain appears twice
    out: list[Split] = []
    for v in variants:
        plan = _plan(_chain(v)) if v.get("status") == VariantStatus.DONE else None
        if plan is None:
            continue
        name = str(v.get("name") or f"variant {v.get('idx')}")
        pt, rt = by_chain.get(plan.pytorch), by_chain.get(plan.runtime_fp32)
        pt_name = str(pt.get("name")) if pt else None
        rt_name = str(rt.get("name")) if rt else None
        add_pt = (
            f"add the `{plan.pytorch_spec}` variant to split this gain"
            if plan.pytorch
            else ("the run has no original model to split this gain against")
        )
        add_rt = f"add the `{plan.runtime_spec}` variant to split this gain"
        pt_m = (pt.get("metrics") or {}) if pt and pt.get("status") == VariantStatus.DONE else None
        rt_m = (rt.get("metrics") or {}) if rt and rt.get("status") == VariantStatus.DONE else None
        q_m = v.get("metrics") or {}
        for figure, label in _figures(q_m, batch_size).items():
            if _value(q_m, figure) is None:
                continue
            why_pt = add_pt if pt is None else f"no {label} figure for `{pt_name}` ({pt.get('status')})"
            why_rt = add_rt if rt is None else f"no {label} figure for `{rt_name}` ({rt.get('status')})"
            out.append(
                Split(
                    idx=int(v.get("idx", -1)),
                    variant=name,
                    runtime=plan.runtime,
                    figure=figure,
                    label=label,
                    pytorch=pt_name,
                    runtime_fp32=rt_name,
                    runtime_step=_factor(pt_m, rt_m, figure, (why_pt, why_rt)),
                    int8_step=_factor(rt_m, q_m, figure, (why_rt, None)),
                    total=_factor(pt_m, q_m, figure, (why_pt, None)),
                )
            )
    return out


def split_frame(splits: Sequence[Split]) -> pd.DataFrame:
    """The splits as a table of text cells (ratios above 1x are faster or smaller), ready to show."""
    rows = []
    for s in splits:
        share = s.runtime_share
        rows.append(
            {
                "int8 variant": s.variant,
                "Runtime": s.runtime,
                "Figure": s.label,
                "Compared": " \u2192 ".join(n or "(missing)" for n in (s.pytorch, s.runtime_fp32, s.variant)),
                "PyTorch fp32 \u2192 runtime fp32": s.runtime_step.text(),
                "Runtime fp32 \u2192 int8": s.int8_step.text(),
                "Total": s.total.text(),
                "Share from the runtime": f"{share:.0%}" if share is not None else "\u2014",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
