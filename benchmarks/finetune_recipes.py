"""Times fine-tuning recipes of a default classifier and their held-out accuracy (is a faster build as accurate?).

The ``head`` recipes fine-tune only a new classification head on the frozen encoder (the base-encoder mode
"head"); their seconds over the baseline's are what the dashboard's time estimate uses (finetune.HEAD_STEP_COST).

Usage: ``python benchmarks/finetune_recipes.py [--dataset movie-reviews] [--recipes baseline,half-lr2x]``. Each recipe
fine-tunes MiniLM-L6 on the bundled dataset's train split into a temp folder (nothing in the data folder changes) and
evaluates on the whole test split, as ``python -m profiling setup`` does. Prints a table (wall and CPU seconds,
steps, test accuracy) and writes ``<data>/benchmarks/finetune_recipes.json`` with the CPU and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from profiling import paths
from profiling.inputs import finetune
from profiling.inputs.datasets import load_dataset

# name -> overrides: max_train (train texts), epochs, lr (peak learning rate), max_length (tokens)
RECIPES: dict[str, dict] = {
    "baseline": {},
    "half-lr2x": {"max_train": 3000, "lr": 2e-4},
    "two-thirds-lr1.5x": {"max_train": 4000, "lr": 1.5e-4},
    "len48": {"max_length": 48},
    "head": {"mode": "head"},
    "head-lr5e-3": {"mode": "head", "lr": 5e-3},
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def run_recipe(dataset: str, overrides: dict) -> dict:
    data = load_dataset({"kind": "bundled", "name": dataset})
    mode = overrides.get("mode", "full")
    recipe = {**finetune.RECIPES[dataset], **{k: v for k, v in overrides.items() if k not in ("lr", "mode")}}
    old_lr = finetune.FINETUNE_MODES[mode]["lr"]
    finetune.FINETUNE_MODES[mode]["lr"] = overrides.get("lr", old_lr)
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="finetune-recipe-") as tmp:
            start = time.perf_counter()
            meta = finetune.finetune_encoder(finetune.minilm_dir(), data, Path(tmp), progress=lambda f, m: None,
                                             mode=mode, **recipe)
            wall = time.perf_counter() - start
    finally:
        finetune.FINETUNE_MODES[mode]["lr"] = old_lr
    ft = meta["finetune"]
    return {
        "dataset": dataset,
        "recipe": recipe,
        "mode": mode,
        "lr": overrides.get("lr", old_lr),
        "train_examples": ft["train_examples"],
        "steps": ft["epochs"] * -(-ft["train_examples"] // ft["batch_size"]),
        "wall_s": round(wall, 1),
        "train_s": ft["train_time_s"],
        "cpu_s": ft["cpu_time_s"],
        "test_accuracy": meta["finetune_test_accuracy"],
        "test_examples": ft["test_examples"],
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movie-reviews", choices=sorted(finetune.RECIPES))
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}")
    rows = []
    for name in names:
        row = {"name": name, **run_recipe(args.dataset, RECIPES[name])}
        rows.append(row)
        print(f"{name}: {row['wall_s']} s wall, accuracy {row['test_accuracy']}", flush=True)
    print(f"\nCPU: {cpu_model()} ({os.cpu_count()} cores)")
    print(f"{'recipe':<20} {'texts':>6} {'steps':>6} {'wall s':>7} {'train s':>8} {'cpu s':>7} {'test acc':>9} "
          f"{'load':>10}")
    for r in rows:
        print(f"{r['name']:<20} {r['train_examples']:>6} {r['steps']:>6} {r['wall_s']:>7} {r['train_s']:>8} "
              f"{r['cpu_s']:>7} {r['test_accuracy']:>9.4f} {r['load_before']:>4}-{r['load_after']:<5}")
    out = paths.data_dir() / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "finetune_recipes.json"
    path.write_text(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
