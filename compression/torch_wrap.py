"""Torch helpers shared by the serializers and predictors: load an hf artifact, a logits-only wrapper, examples.

Every torch/transformers import here is inside a function, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compression.tokenize import load_encoder, max_positions, model_inputs_for

# Two texts of different lengths so traced/exported graphs see real token ids and real padding.
EXAMPLE_TEXTS = (
    "A short one.",
    "A somewhat longer example sentence, used only to trace and export the model graph.",
)


def load_hf_model(path: Path, attn_implementation: str | None = None):
    """A fresh fp32 model from an hf artifact folder, in eval mode (never a shared/cached object)."""
    from compression.hf_io import load_model

    return load_model(Path(path), attn_implementation=attn_implementation).eval()


def build_empty_hf_model(path: Path):
    """The architecture of an hf(-like) artifact folder, weights uninitialised (a full state dict follows)."""
    from compression.hf_io import build_empty_model

    return build_empty_model(Path(path), init=False).eval()


def read_config(path: Path) -> dict[str, Any]:
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else {}


def input_names(path: Path, meta: dict[str, Any]) -> tuple[str, ...]:
    return model_inputs_for(meta, read_config(path))


def example_inputs(path: Path, names: tuple[str, ...], max_length: int | None = None):
    """Tokenized ``EXAMPLE_TEXTS`` as a tuple of int64 tensors, in ``names`` order."""
    import torch

    encoder = load_encoder(Path(path), max_length)
    encoded = encoder.encode(list(EXAMPLE_TEXTS))
    out = []
    for name in names:
        arr = encoded.get(name)
        out.append(
            torch.from_numpy(arr) if arr is not None else torch.zeros_like(torch.from_numpy(encoded["input_ids"]))
        )
    return tuple(out)


def max_sequence(config: dict[str, Any]) -> int:
    """The sequence-length bound given to the exporters' dynamic shapes."""
    return max_positions(config) or 512


def logits_module(model, names: tuple[str, ...], additive_mask: bool = False):
    """Wrap a sequence classifier so it takes positional tensors (in ``names`` order) and returns logits only.

    ``additive_mask`` turns the 0/1 attention mask into the classic additive 4D mask before the model sees it;
    transformers passes a 4D mask through untouched, and this form is what ONNX Runtime's attention fusion
    recognises (transformers 5's own mask-building graph is not matched after the dynamo exporter).
    """
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.names = names

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            if additive_mask:
                b, n = attention_mask.shape
                inverted = 1.0 - attention_mask[:, None, None, :].expand(b, 1, n, n).to(torch.float32)
                kwargs["attention_mask"] = inverted.masked_fill(inverted.to(torch.bool), torch.finfo(torch.float32).min)
            return self.model(**kwargs).logits

    if tuple(names[:2]) != ("input_ids", "attention_mask") or len(names) > 3:
        raise ValueError(f"unsupported model inputs {names}: expected input_ids, attention_mask[, token_type_ids]")
    return LogitsOnly().eval()


def attention_heads(model) -> tuple[list[int], int]:
    """Per-layer attention head counts and the head size, read from the self-attention modules themselves."""
    heads, sizes = [], set()
    for module in model.modules():
        if hasattr(module, "attention_head_size") and hasattr(module, "num_attention_heads"):
            heads.append(int(module.num_attention_heads))
            sizes.add(int(module.attention_head_size))
    if not heads or len(sizes) != 1:
        return heads, 0
    return heads, sizes.pop()


def copy_model_config(src: Path, dst: Path) -> None:
    """Copy the non-weight files of an hf folder (config, generation config...) so the architecture can be rebuilt."""
    import shutil

    for item in Path(src).iterdir():
        if item.is_file() and item.suffix == ".json" and item.name != "artifact.json":
            shutil.copy2(item, Path(dst) / item.name)
