"""Technique "torch-int8": dynamic int8 quantization of a PyTorch model's Linear layers."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer
from compression.cpu import detect
from compression.registry import Context, TechniqueConfig, register
from compression.torch_wrap import build_empty_hf_model, copy_model_config, load_hf_model

log = logging.getLogger(__name__)

STATE_FILE = "model_int8.pt"
LOAD_NOTE = (
    "loading a torch-int8 model builds the fp32 architecture first, quantizes it, then loads the int8 "
    "weights: the peak RAM at load includes that fp32 copy"
)


@dataclass(frozen=True)
class TorchInt8Config(TechniqueConfig):
    name = "torch-int8"
    numeric = "int8"
    label = "Dynamic int8 quantization (PyTorch)"
    group = "quantization"
    help = (
        "Replaces every nn.Linear with a dynamically quantized int8 Linear (weights stored as int8, "
        "activations quantized on the fly) and runs it in PyTorch. Smaller weights and faster matrix "
        "multiplications; predictions can change slightly."
    )
    accepts = ("hf",)
    produces = "torch-int8"
    deprecated = (
        "torch.ao.quantization.quantize_dynamic is deprecated in favour of torchao. torchao's int8 path runs "
        "much slower than fp32 on x86 CPUs (no fast int8 CPU kernel), so the deprecated API is used on purpose."
    )
    warning = "Loading builds an fp32 copy of the model before quantizing it: peak RAM at load stays high."

    def check(self, meta: dict) -> None:
        if meta.get("quantized"):
            raise ValueError(f"the model is already quantized ({meta['quantized']}); quantizing twice is refused")
        if meta.get("qat"):  # its per-tensor observer (absmax/127.5) moves weights trained on ORT's grid
            raise ValueError(
                "the model was fine-tuned (qat) for ONNX Runtime's signed per-channel int8 grid, which PyTorch's "
                "dynamic int8 cannot reproduce; use onnx > onnx-int8 after qat"
            )


def _quantize(model):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # surfaced to users via TorchInt8Config.deprecated
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def load_int8_model(path: Path):
    """Rebuild the fp32 architecture, quantize it, load the saved int8 state (``weights_only=True``)."""
    import torch

    model = _quantize(build_empty_hf_model(Path(path)))
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


@register(TorchInt8Config)
def quantize_torch(src: Artifact, cfg: TorchInt8Config, out_dir: Path, ctx: Context) -> Artifact:
    """Write the int8 state dict, the model config and the tokenizer into ``out_dir``."""
    import torch

    ctx.progress(0.1, "loading the PyTorch model")
    model = load_hf_model(src.path)
    ctx.progress(0.4, "quantizing Linear layers to int8")
    model = _quantize(model)
    n_int8 = sum(1 for m in model.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__)
    # A plain state dict of tensors (packed params unpack to int8 tensors + bias): loadable with weights_only=True.
    torch.save(model.state_dict(), out_dir / STATE_FILE)
    copy_model_config(src.path, out_dir)
    copy_tokenizer(src.path, out_dir)
    ctx.progress(1.0, "int8 quantization done")
    return src.derive(
        out_dir,
        "torch-int8",
        cfg.spec(),
        quantized="torch-int8",
        torch_int8={"engine": torch.backends.quantized.engine, "quantized_linear_layers": n_int8},
        # torch's dynamic Linear always quantizes activations to 7 bits (reduce_range=True in its forward): fbgemm's
        # u8 x s8 kernel then cannot saturate on CPUs without VNNI, so one recipe is right on every x86 CPU.
        int8_recipe={"weight_type": "qint8", "per_channel": False, "activation_bits": 7, "saturates": False,
                     "reason": "PyTorch's dynamic int8 Linear quantizes activations to 7 bits on every CPU",
                     "cpu": detect().to_json()},
        load_builds_fp32_copy=True,
        notes=[*src.meta.get("notes", []), LOAD_NOTE],
    )
