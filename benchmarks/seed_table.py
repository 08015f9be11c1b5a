"""Runs the reference sequence (presets.SEED) on the default classifier and the roberta-base-shaped preset.

Usage: ``python benchmarks/seed_table.py [--model default] [--dataset movie-reviews] [--skip-roberta] [--eval-size 300]
[--repeats 30] [--store PATH]``. ``--model mpnet:tweets --dataset tweets --skip-roberta`` gives the second classifier's
table (the variants its architecture refuses, such as head pruning on MPNet, are left out and listed).
Prints each table and the default-classifier sweep's wall time, and writes ``<data>/benchmarks/seed_table.json``.
Run it twice to see the sweep with every artifact cached (the first run also trains the distilled student).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from profiling import paths
from profiling.cli import execute_with_bars
from profiling.jobs.presets import SEED, variant_name
from profiling.jobs.runner import DEFAULT_SETTINGS, normalize_request
from profiling.report.tables import format_table, results_frame
from profiling.store.runs import RunStore

TARGET_S = 90.0
# Distilling a random-weight roberta-base on 2 cores would take many minutes and its accuracy means nothing, so the
# preset's student trains for a few steps only: enough to measure its size, memory and speed.
PRESET_DISTILL_STEPS = 20


def preset_variants() -> list[dict]:
    variants = copy.deepcopy(SEED)
    for v in variants:
        for step in v["chain"]:
            if step.get("technique") == "distill":
                step["max_steps"] = PRESET_DISTILL_STEPS
        if any(s.get("technique") == "distill" for s in v["chain"]):
            v["name"] = variant_name(v["chain"]) + f" ({PRESET_DISTILL_STEPS} steps)"
    return variants


def applicable_variants(model: str, dataset: str) -> list[dict]:
    """The seed sequence less the variants the model's architecture or format refuses (each printed with why), as
    the Run page's picker refuses them up front."""
    from compression.structure import refusal
    from profiling.inputs.spec_structure import spec_format, spec_meta
    from profiling.jobs.presets import start_refusal

    meta, fmt = spec_meta(model), spec_format(model)
    kept = []
    for v in SEED:
        reasons = [start_refusal(s["technique"], fmt) or refusal(s["technique"], meta) for s in v["chain"]]
        reason = next((r for r in reasons if r), None)
        if reason:
            print(f"left out: {v.get('name') or variant_name(v['chain'])}: {reason}")
        else:
            kept.append(v)
    return kept


def sweep(store: RunStore, model: str, variants: list[dict], settings: dict, dataset: str = "movie-reviews") -> dict:
    request = normalize_request({"model": model, "dataset": {"kind": "bundled", "name": dataset},
                                 "variants": variants, "settings": settings})
    run_id = store.create_run(request)
    print(f"\n== {model}: run {run_id} ({len(request['variants'])} variants)", flush=True)
    wall = execute_with_bars(store, run_id)
    df = results_frame(store, run_id)
    print(format_table(df))
    run = store.get_run(run_id)
    variants_out = store.variants(run_id)
    builds = {v["name"]: v["metrics"].get("build_time_s") for v in variants_out}
    distill_build = sum(t or 0.0 for name, t in builds.items() if "distill" in name.lower())
    print(f"{model}: {run['status']} in {wall:.1f} s wall (building {sum(t or 0 for t in builds.values()):.1f} s of "
          f"it, distillation builds {distill_build:.1f} s)" + (f"; error: {run['error']}" if run["error"] else ""))
    return {
        "model": model,
        "run_id": run_id,
        "status": run["status"],
        "error": run["error"],
        "wall_s": round(wall, 2),
        "distill_build_s": round(distill_build, 2),
        "build_s": {k: (round(t, 2) if t is not None else None) for k, t in builds.items()},
        "table": json.loads(df.drop(columns=["Notes"]).to_json(orient="records")),
        "env": run["env"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="the classifier to sweep first (default: the default one)")
    p.add_argument("--dataset", default="movie-reviews", help="bundled dataset for that classifier")
    p.add_argument("--skip-roberta", action="store_true", help="only that classifier, not the roberta-base preset")
    p.add_argument("--store", help="run store (default: the project's store, so the dashboard shows the runs)")
    p.add_argument("--out", help="JSON output (default: <data>/benchmarks/seed_table.json)")
    for key in ("threads", "batch_size", "repeats", "eval_size"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=DEFAULT_SETTINGS[key])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = {k: getattr(args, k) for k in ("threads", "batch_size", "repeats", "eval_size")}
    store = RunStore(Path(args.store) if args.store else None)
    results = [sweep(store, args.model, applicable_variants(args.model, args.dataset), settings, args.dataset)]
    if not args.skip_roberta:
        results.append(sweep(store, "preset:roberta-base", preset_variants(), settings))
    out = Path(args.out) if args.out else paths.data_dir() / "benchmarks" / "seed_table.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": settings, "results": results}, indent=2, default=str))
    default = results[0]
    cached = default["wall_s"] - default["distill_build_s"]
    print(f"\ndefault-classifier sweep: {default['wall_s']:.1f} s wall; without distillation training "
          f"{cached:.1f} s (target < {TARGET_S:.0f} s with distillation cached)")
    print(f"results written to {out}")
    return 0 if all(r["status"] == "done" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
