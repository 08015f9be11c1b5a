"""Load any artifact format as a Predictor: texts in, float32 logits out (ONNX and OpenVINO never import torch)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from compression.artifact import Artifact
from compression.tokenize import TextEncoder, load_encoder

log = logging.getLogger(__name__)


class Predictor:
    """Base: tokenizes with the artifact's own tokenizer, runs the model, returns logits (n, num_labels)."""

    def __init__(self, artifact: Artifact, threads: int):
        self.artifact = artifact
        self.threads = int(threads)
        self.encoder: TextEncoder = load_encoder(artifact.path)
        self.num_labels = int(artifact.meta.get("num_labels") or 0)

    def predict_logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Logits for ``texts``; one padded batch unless ``batch_size`` splits them."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        step = batch_size or len(texts)
        parts = [self.run(self.encoder.encode(texts[i : i + step])) for i in range(0, len(texts), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for already-encoded features (int64 arrays from ``TextEncoder.encode``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop the model so its memory can be freed."""


class OnnxPredictor(Predictor):
    """ONNX Runtime only: importing this path must not pull in torch or transformers."""

    def __init__(self, artifact: Artifact, threads: int):
        import onnxruntime as ort

        super().__init__(artifact, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Same waiting policy as torch's OpenMP threads (the runner sets OMP_WAIT_POLICY=PASSIVE): spinning
        # workers lose badly when another process shares the 2 cores (measured here: batch-8 median 277-295 ms
        # spinning vs 202-227 ms passive with a busy neighbour).
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(artifact.path / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        ids = features["input_ids"]
        feeds = {name: features[name] if name in features else np.zeros_like(ids) for name in self.inputs}
        return self.session.run([self.output], feeds)[0]

    def close(self) -> None:
        self.session = None


def openvino_config(threads: int) -> dict[str, object]:
    """OpenVINO CPU plugin settings: ``threads`` inference threads, one stream, the latency hint, float32 compute."""
    return {
        "INFERENCE_NUM_THREADS": int(threads),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        # The plugin's default on CPUs with AMX or AVX512-BF16 is bf16 compute for float32 models: ask for f32 so
        # an "fp32" variant is fp32 on every CPU (int8 parts of a quantized model still run in int8).
        "INFERENCE_PRECISION_HINT": "f32",
        # Pinning threads to cores (the plugin's default on Linux for latency) fights the other processes on a
        # shared machine; torch and ONNX Runtime do not pin either, so the runtimes are compared alike.
        "ENABLE_CPU_PINNING": False,
    }


class OpenVinoPredictor(Predictor):
    """OpenVINO Runtime only (model.xml + model.bin on the CPU plugin): must not pull in torch or transformers."""

    def __init__(self, artifact: Artifact, threads: int):
        import openvino as ov

        super().__init__(artifact, threads)
        self.compiled = ov.Core().compile_model(str(artifact.path / "model.xml"), "CPU", openvino_config(self.threads))
        self.request = self.compiled.create_infer_request()
        self.inputs = [p.get_any_name() for p in self.compiled.inputs]

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        ids = features["input_ids"]
        feeds = {name: features[name] if name in features else np.zeros_like(ids) for name in self.inputs}
        # share_outputs=False: the result is a copy, not a view of the request's buffer the next call overwrites
        return self.request.infer(feeds, share_inputs=True, share_outputs=False)[0]

    def close(self) -> None:
        self.request = None
        self.compiled = None


class TorchPredictor(Predictor):
    """PyTorch formats: a callable taking tensors in ``model_inputs`` order (positional) or keywords (hf)."""

    def __init__(self, artifact: Artifact, threads: int):
        import torch

        super().__init__(artifact, threads)
        torch.set_num_threads(self.threads)
        self.model = self._load(artifact)
        self.positional = artifact.format in ("torchscript", "pt2")
        self.compile_time_s: float | None = None  # torch-compile artifacts: compiled here, timed apart from loading
        if artifact.format == "hf" and artifact.meta.get("torch_compile"):
            from compression.torch_compile import compile_model
            from compression.torch_wrap import EXAMPLE_TEXTS

            examples = [self.encoder.encode(list(EXAMPLE_TEXTS)), self.encoder.encode(list(EXAMPLE_TEXTS[:1]))]
            self.model, self.compile_time_s = compile_model(self.model, artifact.meta["torch_compile"], examples)

    def _load(self, artifact: Artifact):
        from compression.torch_wrap import load_hf_model

        if artifact.format == "hf":
            return load_hf_model(artifact.path)
        if artifact.format == "torch-int8":
            from compression.torch_int8 import load_int8_model

            return load_int8_model(artifact.path)
        if artifact.format == "torchscript":
            import torch

            return torch.jit.load(str(artifact.path / "model.pt"), map_location="cpu").eval()
        from compression.torch_export import load_program

        return load_program(artifact.path)

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        tensors = {k: torch.from_numpy(v) for k, v in features.items()}
        with torch.inference_mode():
            if self.positional:
                out = self.model(*(tensors[n] for n in self.encoder.input_names))
            else:
                out = self.model(**tensors).logits
        return out.float().numpy()

    def close(self) -> None:
        self.model = None


def load_predictor(artifact: Artifact, threads: int) -> Predictor:
    """A predictor for any artifact format, running on ``threads`` intra-op threads."""
    if isinstance(artifact, str | Path):
        artifact = Artifact.load(artifact)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if artifact.format == "onnx":
        return OnnxPredictor(artifact, threads)
    if artifact.format == "openvino":
        return OpenVinoPredictor(artifact, threads)
    return TorchPredictor(artifact, threads)
