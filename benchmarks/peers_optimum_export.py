"""Hugging Face Optimum's recipe (export, ORTOptimizer O2, ORTQuantizer preset); run by peers.py with its venv's python.

Usage: ``python peers_optimum_export.py MODEL_DIR OUT_DIR PRESET`` where PRESET names an ``AutoQuantizationConfig``
preset (avx2, avx512, avx512_vnni). Writes ``OUT_DIR/export`` (fp32 ONNX), ``OUT_DIR/o2`` (ORTOptimizer with
``AutoOptimizationConfig.O2()``) and ``OUT_DIR/o2-int8`` (dynamic int8 of the O2 graph), then prints one JSON line:
the folders and ONNX file names, the quantization config, the fused-operator counts and the library versions.
Imports nothing from this project: it runs in its own virtual environment (transformers 4.x, which optimum-onnx 0.1.0
requires) and only reads the model folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("optimum", "optimum-onnx", "onnxruntime", "onnx", "transformers", "torch", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def fused_ops(onnx_path: Path) -> dict[str, int]:
    """Counts of the fused transformer operators in a graph (what O2 is for)."""
    import onnx

    wanted = {"Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu",
              "FastGelu", "Gelu", "LayerNormalization", "MatMulInteger", "DynamicQuantizeLinear", "QAttention"}
    counts: dict[str, int] = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.op_type in wanted:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@contextlib.contextmanager
def default_tensor_type_float() -> Iterator[None]:
    """Optimum's ORTQuantizer with ``DefaultTensorType=FLOAT`` added to the extra options it gives onnxruntime."""
    import onnx
    import optimum.onnxruntime.quantization as oq

    saved = oq.ONNXQuantizer, oq.QDQQuantizer

    def wrap(cls):
        def factory(**kwargs):
            extra = kwargs.get("extra_options") or {}
            kwargs["extra_options"] = {**extra, "DefaultTensorType": onnx.TensorProto.FLOAT}
            return cls(**kwargs)

        return factory

    oq.ONNXQuantizer, oq.QDQQuantizer = wrap(saved[0]), wrap(saved[1])
    try:
        yield
    finally:
        oq.ONNXQuantizer, oq.QDQQuantizer = saved


def only_onnx(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.onnx"))
    if len(files) != 1:
        raise RuntimeError(f"expected one .onnx file in {folder}, found {files}")
    return files[0]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir, out, preset = Path(argv[0]), Path(argv[1]), argv[2]
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    if preset not in ("avx2", "avx512", "avx512_vnni", "arm64"):
        raise SystemExit(f"unknown AutoQuantizationConfig preset {preset!r}")
    for sub in ("export", "o2", "o2-int8"):
        shutil.rmtree(out / sub, ignore_errors=True)
    times = {}
    t0 = time.perf_counter()
    model = ORTModelForSequenceClassification.from_pretrained(str(model_dir), export=True)
    model.save_pretrained(str(out / "export"))
    times["export_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    optimizer = ORTOptimizer.from_pretrained(model)
    opt_config = AutoOptimizationConfig.O2()
    optimizer.optimize(save_dir=str(out / "o2"), optimization_config=opt_config)
    times["optimize_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    o2_file = only_onnx(out / "o2")
    q_config = getattr(AutoQuantizationConfig, preset)(is_static=False)
    workaround = None
    try:
        ORTQuantizer.from_pretrained(str(out / "o2"), file_name=o2_file).quantize(
            save_dir=str(out / "o2-int8"), quantization_config=q_config)
    except RuntimeError as exc:
        if "DefaultTensorType" not in str(exc):
            raise
        # onnxruntime's shape inference cannot type the outputs of O2's com.microsoft fused operators, and Optimum
        # passes no DefaultTensorType; the error message itself says to set it to FLOAT, which is all this changes.
        workaround = {"error": " ".join(str(exc).split()), "fix": "extra_options DefaultTensorType=FLOAT"}
        shutil.rmtree(out / "o2-int8", ignore_errors=True)
        with default_tensor_type_float():
            ORTQuantizer.from_pretrained(str(out / "o2"), file_name=o2_file).quantize(
                save_dir=str(out / "o2-int8"), quantization_config=q_config)
    times["quantize_s"] = time.perf_counter() - t0

    result = {
        "folders": {k: str(out / k) for k in ("export", "o2", "o2-int8")},
        "onnx_files": {k: only_onnx(out / k) for k in ("export", "o2", "o2-int8")},
        "preset": preset,
        "optimization_config": {k: str(v) for k, v in opt_config.__dict__.items()},
        "quantization_config": {k: str(v) for k, v in q_config.__dict__.items()},
        "times": times,
        "quantize_workaround": workaround,
        "versions": versions(),
    }
    result["fused_ops"] = {k: fused_ops(out / k / result["onnx_files"][k]) for k in ("export", "o2", "o2-int8")}
    print("PEERS_RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
