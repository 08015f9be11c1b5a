"""Where a run's time went: each variant's seconds in build, child start, import, load, warm-up, latency, evaluation."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

# Segments in the order they happen, with what each covers (the CLI's legend and the Results page's hover text).
SEGMENTS: dict[str, str] = {
    "build": "building the artifact (the technique chain; a cached artifact is only looked up)",
    "profiler set-up": "the profiler's own set-up before spawning (reading the artifact, writing the workload)",
    "child start": "spawning the fresh profiling process (interpreter start-up) until its import phase",
    "import": "importing the runtime (torch, transformers, onnxruntime, ...) and reading the artifact",
    "load": "loading the model into the runtime",
    "compile": "torch.compile's compilation (inside loading)",
    "first call": "the first, untimed-as-steady-state call",
    "warm-up": "the untimed warm-up calls",
    "latency b1": "timing batch-1 latency (minimum repeats, then more until the interval target or budget)",
    "latency bN": "timing batch-N latency",
    "workloads": "the request's extra workloads (real texts, bucketed, fixed shapes)",
    "latency other": "the rest of the latency phase (summaries, throughput)",
    "evaluation": "predicting the evaluation sample",
    "exit": "writing the result and the profiling process exiting",
    "store": "scoring the predictions (the metrics' imports, once per process) and writing the results to the store",
}
# child phase mark -> segment (the latency phase is split by the per-figure seconds when they are recorded)
_PHASE_SEGMENT = {"import": "import", "load": "load", "first-call": "first call", "warm-up": "warm-up",
                  "latency": "latency", "evaluation": "evaluation", "done": "exit"}
# every segment name in time order ("latency": the whole latency phase of runs from before it was split)
ORDER = [*list(SEGMENTS)[:8], "latency", *list(SEGMENTS)[8:]]
SETUP = "run set-up"  # before the first variant: loading the dataset, preparing the model, sampling the test split


def variant_timing(metrics: Mapping[str, Any], phases: Sequence[Sequence[Any]], build_s: float | None = None,
                   profile_s: float | None = None, after_s: float = 0.0) -> dict[str, float]:
    """Seconds per segment of one variant, in order, from its metrics and the child's phase marks.

    ``phases`` are ``(name, seconds since the child was spawned)``; ``profile_s`` is the profiler call's wall time
    as the runner saw it and ``after_s`` the runner's time after it (scoring, store writes): together with the
    child's ``child_wall_s`` they give the "store" segment. Segments with no data are left out.
    """
    out: dict[str, float] = {}
    build = build_s if build_s is not None else metrics.get("build_time_s")
    if _num(build):
        out["build"] = float(build)
    marks: list[tuple[str, float]] = []
    for mark in phases:
        name, t = str(mark[0]), float(mark[1])
        if name in _PHASE_SEGMENT and name not in {m[0] for m in marks}:
            marks.append((name, t))
    marks.sort(key=lambda m: m[1])
    wall = metrics.get("child_wall_s")
    setup = metrics.get("profiler_setup_s") if _num(metrics.get("profiler_setup_s")) else 0.0
    if setup:
        out["profiler set-up"] = float(setup)
    if marks:
        out["child start"] = max(0.0, marks[0][1])
    for i, (name, t) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else (float(wall) if _num(wall) else None)
        if end is None:
            continue
        seconds = max(0.0, end - t)
        if name == "load" and _num(metrics.get("compile_time_s")):
            compile_s = min(seconds, float(metrics["compile_time_s"]))
            out["load"], out["compile"] = seconds - compile_s, compile_s
        elif name == "latency":
            out.update(_split_latency(seconds, metrics))
        else:
            out[_PHASE_SEGMENT[name]] = seconds
    if _num(profile_s) and _num(wall):
        out["store"] = max(0.0, float(profile_s) - float(wall) - float(setup)) + max(0.0, float(after_s))
    elif after_s:
        out["store"] = float(after_s)
    return {k: out[k] for k in ORDER if k in out}


def _split_latency(seconds: float, metrics: Mapping[str, Any]) -> dict[str, float]:
    parts = {seg: float(metrics[key]) for seg, key in (("latency b1", "latency_b1_time_s"),
                                                       ("latency bN", "latency_bN_time_s"),
                                                       ("workloads", "workloads_time_s")) if _num(metrics.get(key))}
    if not parts:  # a run from before the per-figure seconds were recorded
        return {"latency": seconds}
    parts["latency other"] = max(0.0, seconds - sum(parts.values()))
    return parts


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def timing_of(variant: Mapping[str, Any], timeline: Mapping[str, Any] | None = None) -> dict[str, float]:
    """A stored variant's segments: the ones the runner recorded, or (older runs) rebuilt from its phase marks."""
    metrics = variant.get("metrics") or {}
    stored = metrics.get("timing_s")
    if isinstance(stored, dict) and stored:
        return {str(k): float(v) for k, v in stored.items() if _num(v)}
    return variant_timing(metrics, (timeline or {}).get("phases") or [])


def run_timeline(variants: Sequence[Mapping[str, Any]], timelines: Mapping[int, Mapping[str, Any]] | None = None
                 ) -> list[dict[str, Any]]:
    """The run as rows ``{variant, idx, segment, start_s, seconds}``: each variant's segments back to back from
    its offset in the run (``run_offset_s``; older runs: right after the previous variant), the run's own set-up
    (before the first variant) as a row of its own."""
    rows: list[dict[str, Any]] = []
    cursor = 0.0
    for v in variants:
        segments = timing_of(v, (timelines or {}).get(v.get("idx")))
        if not segments:
            continue
        offset = (v.get("metrics") or {}).get("run_offset_s")
        start = float(offset) if _num(offset) else cursor
        if not rows and start > 0 and _num(offset):
            rows.append({"variant": SETUP, "idx": -1, "segment": SETUP, "start_s": 0.0, "seconds": start})
        for name, seconds in segments.items():
            rows.append({"variant": str(v.get("name")), "idx": v.get("idx"), "segment": name, "start_s": start,
                         "seconds": seconds})
            start += seconds
        cursor = start
    return rows


def format_timing(variants: Sequence[Mapping[str, Any]], timelines: Mapping[int, Mapping[str, Any]] | None = None
                  ) -> str:
    """A plain-text table: one line per variant with its total and its segments' seconds."""
    rows = run_timeline(variants, timelines)
    if not rows:
        return "no timing recorded for this run"
    order = [s for s in [SETUP, *ORDER] if any(r["segment"] == s for r in rows)]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    width = max(8, *(len(n) for n in names))
    cols = [max(len(s), 6) for s in order]
    lines = [f"{'variant':<{width}}  {'total s':>8}  " + "  ".join(f"{s:>{w}}" for s, w in zip(order, cols))]
    totals = {s: 0.0 for s in order}
    for name in names:
        seg = {r["segment"]: r["seconds"] for r in rows if r["variant"] == name}
        for s, x in seg.items():
            totals[s] += x
        cells = "  ".join(f"{seg[s]:>{w}.2f}" if s in seg else f"{'':>{w}}" for s, w in zip(order, cols))
        lines.append(f"{name:<{width}}  {sum(seg.values()):>8.2f}  {cells}")
    whole = sum(totals.values())
    lines.append(f"{'all':<{width}}  {whole:>8.2f}  " + "  ".join(f"{totals[s]:>{w}.2f}" for s, w in zip(order, cols)))
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
    lines.append("most time: " + ", ".join(f"{s} {x:.1f} s ({x / whole:.0%})" for s, x in top if whole > 0))
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """The ``timing RUN_ID`` subcommand."""
    p = sub.add_parser("timing", help="print where a run's time went: each variant's seconds per phase")
    p.add_argument("run_id")
    p.add_argument("--store", help="run store file (default: $COMPRESSION_STORE or data/runs.sqlite)")
    p.add_argument("--legend", action="store_true", help="also say what each phase covers")


def cmd_timing(args: argparse.Namespace, store: Any) -> str:
    """The text ``timing RUN_ID`` prints; raises LookupError for an unknown run."""
    if store.get_run(args.run_id) is None:
        raise LookupError(f"no run {args.run_id!r} in {store.path}; see 'python -m profiling list'")
    variants = store.variants(args.run_id)
    old = any(not (v.get("metrics") or {}).get("timing_s") for v in variants)  # rebuilt from the phase marks
    text = format_timing(variants, store.timelines(args.run_id) if old else None)
    if getattr(args, "legend", False):
        text += "\n\n" + "\n".join(f"{k}: {v}" for k, v in {SETUP: "loading the dataset, preparing the model and "
                                                                   "sampling the test split", **SEGMENTS}.items())
    return text
