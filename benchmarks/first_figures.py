"""Seconds from Launch to the first variant's figures, and to the whole run, through the engine as the dashboard does.

Usage: ``python benchmarks/first_figures.py [--variants seed|quick|original|onnx] [--no-distill] [--protocol quick]
[--store PATH] [--out PATH]``.

Launches a run of the default classifier on the bundled movie reviews with ``profiling.jobs.runner.launch`` (the Run
page's call: a detached ``python -m profiling execute`` process) and polls the run store every 0.1 s, as the page
does every second. Reports the seconds from the call to the first variant stored as done (its figures on screen,
give or take the page's 1 s refresh) and to the run done; each variant's latency intervals and whether the interval
target was reached; the run's own timing segments (``python -m profiling timing RUN_ID``). Prints a table and
writes ``<data>/benchmarks/first_figures.json``. Artifacts are built on the first run (the distilled student trains
for minutes): run it once to build them, then again to time a cached sweep; ``--no-distill`` leaves the distilled
variants out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiling import paths
from profiling.jobs.presets import PRESETS
from profiling.jobs.runner import launch
from profiling.measure.timing import format_timing
from profiling.settings import DEFAULTS
from profiling.store.runs import RunStore

FIRST_TARGET_S = 15.0
SWEEP_TARGET_S = 90.0  # the reference sequence with every artifact cached
POLL_S = 0.1


def variants_for(name: str, no_distill: bool) -> list[dict]:
    if name in ("original", "onnx"):  # the Original alone; the Original and ONNX Runtime
        return PRESETS["seed"][: 1 if name == "original" else 2]
    variants = [v for v in PRESETS[name]
                if not (no_distill and any(s.get("technique") == "distill" for s in v["chain"]))]
    return variants


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def interval(metrics: dict, key: str) -> dict:
    return {
        "median_ms": metrics.get(f"latency_{key}_median_ms"),
        "ci_low_ms": metrics.get(f"latency_{key}_ci_low_ms"),
        "ci_high_ms": metrics.get(f"latency_{key}_ci_high_ms"),
        "rel_half_width": metrics.get(f"latency_{key}_rel_half_width"),
        "target_rel": metrics.get(f"latency_{key}_target_rel"),
        "target_reached": metrics.get(f"latency_{key}_target_reached"),
        "n": metrics.get(f"latency_{key}_n"),
        "stopped_by": metrics.get(f"latency_{key}_stopped_by"),
    }


def run_once(store_path: Path, variants: list[dict], settings: dict, timeout_s: float) -> dict:
    request = {"model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"}, "variants": variants,
               "settings": settings}
    load_before = load_average()
    t0 = time.perf_counter()
    run_id = launch(request, store_path)
    store = RunStore(store_path)
    done_at: dict[int, float] = {}
    status = "running"
    while time.perf_counter() - t0 < timeout_s:
        for v in store.variants(run_id):
            if v["status"] in ("done", "failed") and v["idx"] not in done_at:
                done_at[v["idx"]] = time.perf_counter() - t0
                print(f"  {done_at[v['idx']]:7.1f} s  variant {v['idx'] + 1} {v['name']!r} {v['status']}", flush=True)
        status = store.get_run(run_id)["status"]
        if status not in ("queued", "running"):
            break
        time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    run = store.get_run(run_id)
    out_variants = []
    for v in store.variants(run_id):
        m = v.get("metrics") or {}
        out_variants.append({
            "idx": v["idx"], "name": v["name"], "status": v["status"], "error": v.get("error"),
            "done_after_s": round(done_at[v["idx"]], 2) if v["idx"] in done_at else None,
            "b1": interval(m, "b1"), "bN": interval(m, "bN"), "accuracy": m.get("accuracy"),
            "timing_s": {k: round(x, 2) for k, x in (m.get("timing_s") or {}).items()},
        })
    first = done_at.get(0)
    return {
        "run_id": run_id, "status": run["status"], "error": run.get("error"), "store": str(store_path),
        "first_variant_s": round(first, 2) if first is not None else None,
        "whole_run_s": round(wall, 2), "variants": out_variants, "timing_table": format_timing(store.variants(run_id)),
        "load_average_before": load_before, "load_average_after": load_average(),
    }


def fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(res: dict) -> None:
    print(f"\nrun {res['run_id']}: {res['status']}" + (f" ({res['error']})" if res["error"] else ""))
    head = f"{'variant':<44} {'done s':>7} {'b1 ms':>8} {'b1 95% CI':>17} {'±%':>5} {'tgt':>4} " \
           f"{'bN ms':>8} {'bN 95% CI':>17} {'±%':>5} {'tgt':>4} {'acc':>6}"
    print(head)
    for v in res["variants"]:
        cells = []
        for key in ("b1", "bN"):
            iv = v[key]
            ci = f"{fmt(iv['ci_low_ms'], '.1f')}-{fmt(iv['ci_high_ms'], '.1f')}"
            half = fmt(100 * iv["rel_half_width"], ".1f") if iv["rel_half_width"] is not None else "-"
            reached = {True: "yes", False: "NO"}.get(iv["target_reached"], "-")
            cells.append(f"{fmt(iv['median_ms'], '.1f'):>8} {ci:>17} {half:>5} {reached:>4}")
        print(f"{v['name'][:44]:<44} {fmt(v['done_after_s'], '.1f'):>7} {cells[0]} {cells[1]} "
              f"{fmt(v['accuracy'], '.3f'):>6}")
    print(f"\nfirst variant's figures stored {fmt(res['first_variant_s'], '.1f')} s after Launch "
          f"(target < {FIRST_TARGET_S:.0f} s); whole run {res['whole_run_s']:.1f} s")
    print("load average before/after:", res["load_average_before"], res["load_average_after"])
    print("\nwhere the time went (s):\n" + res["timing_table"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", choices=["seed", "quick", "original", "onnx"], default="seed")
    p.add_argument("--no-distill", action="store_true", help="leave out the distilled variants")
    p.add_argument("--protocol", choices=["quick", "thorough"], default="quick")
    p.add_argument("--store", help="run store (default: a fresh temporary one; artifacts stay cached in data/)")
    p.add_argument("--out", help="JSON output (default: <data>/benchmarks/first_figures.json)")
    p.add_argument("--timeout-s", type=float, default=3600)
    args = p.parse_args(argv)
    settings = DEFAULTS.with_protocol(args.protocol).to_dict()
    tmp = None
    if args.store:
        store_path = Path(args.store)
    else:
        tmp = tempfile.mkdtemp(prefix="first-figures-")
        store_path = Path(tmp) / "runs.sqlite"
    variants = variants_for(args.variants, args.no_distill)
    print(f"launching {len(variants)} variant(s) of the default classifier, {args.protocol} protocol: "
          + ", ".join(v["name"] for v in variants), flush=True)
    res = run_once(store_path, variants, settings, args.timeout_s)
    print_table(res)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), None) if Path("/proc/cpuinfo").is_file() else None
    out = Path(args.out) if args.out else paths.data_dir() / "benchmarks" / "first_figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"variants": args.variants, "no_distill": args.no_distill, "protocol": args.protocol,
              "settings": settings, "cpu": cpu, "logical_cores": os.cpu_count(),
              "first_target_s": FIRST_TARGET_S, "sweep_target_s": SWEEP_TARGET_S,
              "first_target_met": res["first_variant_s"] is not None and res["first_variant_s"] < FIRST_TARGET_S,
              **res}
    out.write_text(json.dumps(record, indent=2, default=str))
    print(f"results written to {out}")
    return 0 if res["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
