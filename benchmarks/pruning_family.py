"""Pruning family on the default classifier through the profiling engine: magnitude, movement, low-rank, heads.

Runs (or, with --run-id, reads back) one engine run with the variants below, prints a table and writes
data/benchmarks/pruning_family.json with the load average before and after. Movement pruning and the low-rank
recovery fine-tune for 120 steps each: the whole run takes ~15 min on an idle 2-core machine, more when busy.

    python benchmarks/pruning_family.py [--store PATH] [--run-id RUN_ID]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TECHNIQUES = (
    "onnx-int8,prune-magnitude:0.5,prune-magnitude:0.9,prune-magnitude:0.9>onnx>onnx-int8,low-rank:value=0.25,"
    "prune-heads:fraction=0.5,method=importance,prune-heads:fraction=0.5,method=importance,steps=4,"
    "prune-movement:sparsity=0.9,steps=120,low-rank:value=0.25,recovery_steps=120,prune-movement:sparsity=0.5,steps=120"
)
KEYS = ("disk_mib", "peak_rss_mib", "latency_b1_median_ms", "latency_bN_median_ms", "accuracy", "agreement",
        "param_count")


def main() -> None:
    from profiling.cli import parse_techniques
    from profiling.jobs.runner import execute, normalize_request
    from profiling.report.tables import format_table, results_frame
    from profiling.store.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(ROOT / "data" / "benchmarks" / "pruning_family.sqlite"))
    ap.add_argument("--run-id", nargs="+", help="read existing run(s) instead of running a new one")
    args = ap.parse_args()
    store = RunStore(Path(args.store))
    load_before = os.getloadavg()
    if args.run_id:
        run_ids = args.run_id
    else:
        request = normalize_request({
            "model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"},
            "variants": [{"name": "Original", "chain": []}, *parse_techniques(TECHNIQUES)], "settings": {},
        })
        run_ids = [store.create_run(request)]
        execute(run_ids[0], store)
    load_after = os.getloadavg()
    rows = []
    for run_id in run_ids:
        print(format_table(results_frame(store, run_id)))
        for v in store.variants(run_id):
            m = v.get("metrics") or {}
            rows.append({"run_id": run_id, "name": v["name"], "status": v["status"], **{k: m.get(k) for k in KEYS},
                         "chain": v.get("chain")})
    out = ROOT / "data" / "benchmarks" / "pruning_family.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run_ids": run_ids, "store": str(args.store), "written": time.strftime("%Y-%m-%d %H:%M"),
                               "loadavg_before": load_before, "loadavg_after": load_after, "rows": rows}, indent=1))
    print(f"load average before {load_before}, after {load_after}; wrote {out}")


if __name__ == "__main__":
    main()
