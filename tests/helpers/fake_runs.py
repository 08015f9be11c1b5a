"""A fake finished run written through the RunStore writer methods, shared by H5b's unit, app and browser tests."""

from __future__ import annotations

from pathlib import Path

from profiling.store.runs import RunStore

LABEL_NAMES = ["negative", "positive"]
TEXTS = [f"review number {i}: " + ("great film" if i % 2 else "dull plot") for i in range(12)]
LABELS = [i % 2 for i in range(12)]
# The original gets 10/12 right (wrong on 2 and 5).
ORIG_PREDS = [0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1]
# onnx: identical to the original.
ONNX_PREDS = list(ORIG_PREDS)
# onnx int8: fixes example 2 (now 0 = true), breaks 4 (0 -> 1) and 7 (1 -> 0).
INT8_PREDS = [0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1]
INT8_CHANGED = [2, 4, 7]

METRICS = {
    0: {
        "disk_mib": 87.0,
        "peak_rss_mib": 610.0,
        "load_time_s": 1.2,
        "latency_b1_median_ms": 20.0,
        "latency_b1_p90_ms": 24.0,
        "latency_bN_median_ms": 90.0,
        "latency_bN_p90_ms": 99.0,
        "throughput_per_s": 88.0,
        "batch_size": 8,
        "threads": 2,
    },
    1: {
        "disk_mib": 87.5,
        "peak_rss_mib": 300.0,
        "load_time_s": 0.4,
        "latency_b1_median_ms": 10.0,
        "latency_b1_p90_ms": 12.0,
        "latency_bN_median_ms": 60.0,
        "latency_bN_p90_ms": 70.0,
        "throughput_per_s": 133.0,
        "batch_size": 8,
        "threads": 2,
    },
    2: {
        "disk_mib": 22.0,
        "peak_rss_mib": 200.0,
        "load_time_s": 0.3,
        "latency_b1_median_ms": 5.0,
        "latency_b1_p90_ms": 6.0,
        "latency_bN_median_ms": 30.0,
        "latency_bN_p90_ms": 35.0,
        "throughput_per_s": 266.0,
        "batch_size": 8,
        "threads": 2,
    },
}


def _probs(preds: list[int], confidence: float) -> list[list[float]]:
    return [[confidence, 1 - confidence] if p == 0 else [1 - confidence, confidence] for p in preds]


def _timeline(peak: float) -> tuple[list[tuple[float, float]], list[tuple[str, float]]]:
    samples = [(i * 0.05, 40.0 + min(i, 40) / 40 * (peak - 40.0)) for i in range(80)]
    phases = [("import", 0.0), ("load", 0.8), ("warm-up", 2.0), ("latency", 2.5), ("evaluation", 3.4), ("done", 3.95)]
    return samples, phases


def accuracy(preds: list[int]) -> float:
    return sum(p == t for p, t in zip(preds, LABELS, strict=True)) / len(LABELS)


def build_fake_run(store: RunStore, status: str = "done", with_failed: bool = False) -> str:
    """A run of the default model on movie reviews: original, onnx, onnx-int8 (and a failed torchscript)."""
    variants = [
        {"name": "onnx", "chain": [{"technique": "onnx"}]},
        {"name": "onnx-int8", "chain": [{"technique": "onnx"}, {"technique": "onnx-int8"}]},
    ]
    if with_failed:
        variants.append({"name": "torchscript", "chain": [{"technique": "torchscript"}]})
    request = {
        "model": "default",
        "dataset": {"kind": "bundled", "name": "movie-reviews"},
        "variants": variants,
        "settings": {"threads": 2, "batch_size": 8, "repeats": 5, "warmup": 2, "eval_size": 12, "seed": 0},
    }
    run_id = store.create_run(request)
    store.set_run_status(run_id, "running")
    store.set_run_env(run_id, {"cpu_model": "Fake CPU", "logical_cores": 2, "versions": {"onnxruntime": "1.32"}})
    store.set_examples(run_id, TEXTS, LABELS, LABEL_NAMES)
    for idx, preds, conf in ((0, ORIG_PREDS, 0.9), (1, ONNX_PREDS, 0.9), (2, INT8_PREDS, 0.7)):
        metrics = {**METRICS[idx], "accuracy": accuracy(preds)}
        store.upsert_variant(run_id, idx, status="done", metrics=metrics, progress=1.0)
        store.set_predictions(run_id, idx, preds, _probs(preds, conf))
        samples, phases = _timeline(METRICS[idx]["peak_rss_mib"])
        store.append_timeline(run_id, idx, samples[:40], phases[:3])
        store.append_timeline(run_id, idx, samples[40:], phases[3:])
    store.add_variant_note(run_id, 2, "ORT quantize_dynamic: the graph's value_info was dropped first")
    if with_failed:
        store.upsert_variant(run_id, 3, status="failed", error="torch.jit.trace failed: unsupported op")
        store.add_variant_note(run_id, 3, "torch.jit.trace is deprecated in favour of torch.export")
    if status != "running":
        store.set_run_status(run_id, status, error="out of memory" if status == "failed" else None)
    return run_id


def fake_store(tmp_path: Path, **kwargs) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "runs.sqlite")
    return store, build_fake_run(store, **kwargs)
