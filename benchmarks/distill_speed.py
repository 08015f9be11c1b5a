"""Distillation speed: trains the default classifier's student with several schedules and times each on this machine.

Usage: ``python benchmarks/distill_speed.py [--only NAME,...] [--eval-size 300] [--merge OTHER.json ...]``. Each
option set is built with the real technique (``compression.apply``) on the movie-reviews train split and scored on
the run's seeded test sample (the same ``eval_size``/seed sample a run evaluates on). Prints a table (steps, wall and
CPU seconds, accuracy, CPU, load average, CPU other processes took meanwhile) and writes
``<data>/benchmarks/distill_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Waiting OpenMP threads sleep instead of spinning, so the process's CPU time counts compute only: on a shared machine
# CPU seconds compare candidates far more steadily than wall seconds (the table shows both).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from compression import Context, apply, hf_io
from compression.cpu import detect
from compression.distillation import DistillConfig
from profiling import paths
from profiling.measure.latency import CpuWindow

log = logging.getLogger("distill_speed")

TARGET_S = 90.0
# name -> DistillConfig options; "before" is the float32 schedule (teacher run in every step); "bf16" the same in
# bf16 mixed precision (the default on CPUs with native bf16).
CANDIDATES: dict[str, dict] = {
    "before": {"max_steps": 300, "lr": 1e-4, "cache_teacher": False, "precision": "fp32"},
    "bf16": {"max_steps": 300, "lr": 1e-4, "cache_teacher": False, "precision": "bf16"},
    "bf16-200-lr1.5e-4": {"max_steps": 200, "lr": 1.5e-4, "cache_teacher": False, "precision": "bf16"},
    "cached": {"max_steps": 300, "lr": 1e-4, "cache_teacher": True},
    "cached-150-lr2e-4": {"max_steps": 150, "lr": 2e-4, "cache_teacher": True},
    "cached-100-lr3e-4": {"max_steps": 100, "lr": 3e-4, "cache_teacher": True},
    "uncached-100-lr3e-4": {"max_steps": 100, "lr": 3e-4, "cache_teacher": False},
    "cached-100-lr1e-4": {"max_steps": 100, "lr": 1e-4, "cache_teacher": True},
    "cached-60-lr5e-4": {"max_steps": 60, "lr": 5e-4, "cache_teacher": True},
    "cached-100-lr3e-4-unfrozen": {"max_steps": 100, "lr": 3e-4, "freeze_embeddings": False, "cache_teacher": True},
}


def accuracy(path: Path, texts: list[str], labels: list[int], batch: int = 64) -> float:
    import torch

    model, tok = hf_io.load_model(path), hf_io.load_tokenizer(path)
    right = 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            logits = model(**hf_io.encode(model, tok, texts[i : i + batch], 64)).logits
            right += int((logits.argmax(-1) == torch.tensor(labels[i : i + batch])).sum())
    return right / len(texts)


def _write(path: Path, cpu: str, n: int, teacher_acc: float | None, rows: dict) -> None:
    path.write_text(json.dumps({"cpu": cpu, "eval_size": n, "teacher_accuracy": teacher_acc, "target_s": TARGET_S,
                                "rows": list(rows.values())}, indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated candidate names (default: all): " + ", ".join(CANDIDATES))
    p.add_argument("--eval-size", type=int, default=300)
    p.add_argument("--merge", nargs="*", default=[],
                   help="JSON files of other invocations (e.g. run in parallel) whose rows join this table; with "
                        "--only '' nothing is trained")
    p.add_argument("--output", default=str(paths.data_dir() / "benchmarks" / "distill_speed.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model
    from profiling.jobs.runner import sample_indices

    torch.set_num_threads(2)
    names = [n.strip() for n in (",".join(CANDIDATES) if args.only is None else args.only).split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}")
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    src = resolve_model("default:movie-reviews")
    eval_idx, _ = sample_indices(len(data.test_texts), args.eval_size, 0)
    texts = [data.test_texts[i] for i in eval_idx]
    labels = [data.test_labels[i] for i in eval_idx]
    cpu = detect().summary()
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out_path.read_text()) if out_path.is_file() else {}
    same = previous.get("cpu") == cpu and previous.get("eval_size") == len(texts)
    rows = {r["name"]: r for r in previous.get("rows", [])} if same else {}
    for other_file in args.merge:
        other_run = json.loads(Path(other_file).read_text())
        if other_run.get("cpu") == cpu and other_run.get("eval_size") == len(texts):
            rows.update({r["name"]: r for r in other_run.get("rows", [])})
    teacher_acc = previous.get("teacher_accuracy") if not names and same else accuracy(src.path, texts, labels)
    log.info("teacher accuracy on the %d-text sample: %.3f", len(texts), teacher_acc or float("nan"))
    for name in names:
        cfg = DistillConfig(**CANDIDATES[name])
        with tempfile.TemporaryDirectory(prefix="distill-speed-") as tmp:
            load_before = os.getloadavg()
            window = CpuWindow()
            t0, cpu0 = time.perf_counter(), time.process_time()
            art = apply(src, cfg, Path(tmp) / "student",
                        Context(train_texts=data.train_texts, train_labels=data.train_labels, seed=0, threads=2))
            build_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
            other = window.stop()
            acc = accuracy(art.path, texts, labels)
        rows[name] = {
            "name": name, "options": CANDIDATES[name], "steps": art.meta["distill_steps"],
            "train_s": round(art.meta["distill_time_s"], 1), "build_s": round(build_s, 1), "cpu_s": round(cpu_s, 1),
            "accuracy": round(acc, 4), "loss_last": round(art.meta["distill_loss_last"], 4),
            "load_avg_1m_before": round(load_before[0], 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "other_cpu_frac": None if other["other_cpu_frac"] is None else round(other["other_cpu_frac"], 3),
        }
        log.info("%s: %s", name, rows[name])
        _write(out_path, cpu, len(texts), teacher_acc, rows)
    _write(out_path, cpu, len(texts), teacher_acc, rows)
    print(f"CPU: {cpu}; teacher accuracy {teacher_acc:.3f} on {len(texts)} test texts; target < {TARGET_S:.0f} s")
    print(f"{'candidate':<28} {'steps':>5} {'train s':>8} {'build s':>8} {'CPU s':>7} {'acc':>6} {'load 1m':>9} "
          f"{'other CPU':>9}")
    for r in rows.values():
        other = "-" if r.get("other_cpu_frac") is None else f"{r['other_cpu_frac']:.0%}"
        cpu_s = "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.0f}"
        print(f"{r['name']:<28} {r['steps']:>5} {r['train_s']:>8.1f} {r['build_s']:>8.1f} {cpu_s:>7} "
              f"{r['accuracy']:>6.3f} {r['load_avg_1m_before']:>4.1f}/{r['load_avg_1m_after']:<4.1f} {other:>9}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
