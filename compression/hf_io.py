"""Load, save and inspect Hugging Face classifiers, including ones with structurally pruned attention heads."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from compression.errors import UserError
from compression.registry import TechniqueError
from compression.structure import Attention
from compression.structure import find as find_structure

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# Custom config attribute: attention heads remaining in each layer (absent or equal to the config's head
# count for an unpruned model). The per-head size stays hidden_size / num_attention_heads of the original.
HEADS_ATTR = "heads_per_layer"
# Custom config attribute: {torch module name: rank} of Linears factorized into two (low-rank technique).
LOW_RANK_ATTR = "low_rank_ranks"
# Custom config attribute: the dtype the weights are stored AND run in ("float16"/"bfloat16", half precision
# technique). Hub configs' own torch_dtype is ignored on purpose: models are otherwise loaded in float32.
DTYPE_ATTR = "compression_dtype"
HALF_DTYPES = ("float16", "bfloat16")


def stored_dtype(config: Any) -> Any:
    """The torch dtype recorded by the half-precision technique, or None (float32)."""
    name = getattr(config, DTYPE_ATTR, None)
    if name is None:
        return None
    if name not in HALF_DTYPES:
        raise ValueError(f"config {DTYPE_ATTR} must be one of {', '.join(HALF_DTYPES)}, got {name!r}")
    import torch

    return getattr(torch, name)


class UnsupportedArchitectureError(UserError):
    """The model's attention layout is not one this project knows how to prune or rebuild."""


# One layer's attention (projections, head count, head size), found by compression.structure.
AttentionHandle = Attention


def attention_layers(model: Any) -> list[Attention]:
    """Per-layer attention handles of any encoder whose structure is found (compression.structure).

    Raises UnsupportedArchitectureError, naming the architecture, when no attention is found or when the layers
    share one attention module (ALBERT): a head cannot then be pruned in one layer alone.
    """
    try:
        s = find_structure(model)
        handles = s.attentions()
    except TechniqueError as exc:  # StructureError, or any refusal of the structure finder
        raise UnsupportedArchitectureError(str(exc)) from exc
    if s.shared:
        raise UnsupportedArchitectureError(
            f"attention heads of {s.name} cannot be handled per layer: its {s.num_layers} layers share "
            f"{len(s.blocks)} set(s) of attention weights (cross-layer parameter sharing)"
        )
    return handles


def heads_per_layer(model: Any) -> list[int]:
    return [h.num_heads for h in attention_layers(model)]


def count_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _read_config(path: Path) -> Any:
    from transformers import AutoConfig

    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_FILE}: not a Hugging Face model folder")
    return AutoConfig.from_pretrained(str(path), trust_remote_code=False)


def _model_class(config: Any) -> Any:
    import transformers
    from transformers import AutoModelForSequenceClassification

    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None and name.endswith("ForSequenceClassification"):
            return cls
    return AutoModelForSequenceClassification


def _stored_heads(config: Any) -> list[int] | None:
    heads = getattr(config, HEADS_ATTR, None)
    if heads is None:
        return None
    heads = [int(h) for h in heads]
    if len(heads) != config.num_hidden_layers:
        raise ValueError(f"config {HEADS_ATTR} has {len(heads)} entries for {config.num_hidden_layers} layers")
    return heads


def _is_pruned(config: Any) -> bool:
    heads = _stored_heads(config)
    return heads is not None and any(h != config.num_attention_heads for h in heads)


def _shrink(model: Any, heads: list[int]) -> None:
    """Give every layer the stored number of heads (which heads does not matter: weights are loaded next)."""
    if not heads:
        return  # nothing recorded (e.g. shared attention, ALBERT): the config's own head count stands
    handles = attention_layers(model)
    for handle, n in zip(handles, heads, strict=True):
        if n != handle.num_heads:
            handle.keep_heads(list(range(n)))


def _from_config(config: Any, attn_implementation: str | None, init: bool) -> Any:
    """Instantiate the architecture; ``init=False`` skips the (slow) random init when weights follow."""
    import contextlib

    cls = _model_class(config)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    build = cls._from_config if hasattr(cls, "_from_config") else cls.from_config
    ctx: Any = contextlib.nullcontext()
    if not init:
        try:
            from transformers.initialization import no_init_weights
        except ImportError:  # older transformers
            from transformers.modeling_utils import no_init_weights
        ctx = no_init_weights()
    with ctx:
        return build(copy.deepcopy(config), **kwargs)


def build_empty_model(path: Path, attn_implementation: str | None = None, init: bool = True) -> Any:
    """The architecture of the hf artifact at ``path`` (pruned head counts included), randomly initialised.

    ``init=False`` skips the random initialisation (weights are uninitialised memory): faster when a state
    dict is loaded right after.
    """
    config = _read_config(path)
    model = _from_config(config, attn_implementation, init=init)
    heads = _stored_heads(config)
    if heads is not None:
        _shrink(model, heads)
    apply_low_rank_structure(model, getattr(config, LOW_RANK_ATTR, None) or {})
    return model.eval()


def apply_low_rank_structure(model: Any, ranks: dict[str, int]) -> None:
    """Replace each named Linear by Sequential(Linear(in, r, no bias), Linear(r, out)); weights are set later."""
    from torch import nn

    for name, rank in ranks.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, attr)
        if not isinstance(old, nn.Linear):
            raise ValueError(f"low-rank layer {name} is a {type(old).__name__}, not a Linear")  # noqa: TRY004
        first = nn.Linear(old.in_features, int(rank), bias=False, dtype=old.weight.dtype)
        second = nn.Linear(int(rank), old.out_features, bias=old.bias is not None, dtype=old.weight.dtype)
        setattr(parent, attr, nn.Sequential(first, second))


def load_model(path: Path, attn_implementation: str | None = None) -> Any:
    """Load the classifier at ``path`` in eval mode, weights from safetensors, pruned heads handled."""
    path = Path(path)
    config = _read_config(path)
    weights = path / WEIGHTS_FILE
    from compression.sparse_io import SPARSE_WEIGHTS_FILE, load_sparse_into

    sparse = path / SPARSE_WEIGHTS_FILE
    ranks = getattr(config, LOW_RANK_ATTR, None) or {}
    if not _is_pruned(config) and not ranks and not sparse.is_file():
        cls = _model_class(config)
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        if stored_dtype(config) is not None:
            kwargs["dtype"] = stored_dtype(config)
        model = cls.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False, **kwargs)
        return model.eval()
    if not weights.is_file() and not sparse.is_file():
        raise FileNotFoundError(f"{path} has no {WEIGHTS_FILE}")
    from safetensors.torch import load_file

    model = _from_config(config, attn_implementation, init=False)
    _shrink(model, _stored_heads(config) or [])
    apply_low_rank_structure(model, ranks)
    if stored_dtype(config) is not None:
        model.to(stored_dtype(config))
    if sparse.is_file():
        load_sparse_into(model, sparse)  # tensor by tensor: no second full copy of the weights in RAM
        return model.eval()
    state = load_file(str(weights))
    model.load_state_dict(state, strict=True)
    return model.eval()


def model_meta(model: Any) -> dict[str, Any]:
    """Meta fields describing the architecture (heads_per_layer None when head layout is unknown)."""
    config = model.config
    try:
        heads: list[int] | None = heads_per_layer(model)
    except UnsupportedArchitectureError:
        heads = None
    try:
        structure: dict[str, Any] | None = find_structure(model).summary()
    except TechniqueError:
        structure = None
    return {
        "num_layers": int(config.num_hidden_layers),
        "heads_per_layer": heads,
        "hidden_size": int(config.hidden_size),
        "param_count": count_params(model),
        "model_type": config.model_type,
        "structure": structure,
    }


def save_model(model: Any, out_dir: Path, sparse: bool = False) -> dict[str, Any]:
    """Write config.json (with the per-layer head counts) and model.safetensors; return meta updates.

    ``sparse=True`` writes model.sparse.safetensors instead (mostly-zero matrices as bitmask + values)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = model_meta(model)
    config = copy.deepcopy(model.config)
    if meta["heads_per_layer"] is not None:
        setattr(config, HEADS_ATTR, list(meta["heads_per_layer"]))
    elif hasattr(config, HEADS_ATTR):
        delattr(config, HEADS_ATTR)
    config.architectures = [type(model).__name__]
    config.save_pretrained(str(out_dir))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if sparse:
        from compression.sparse_io import SPARSE_WEIGHTS_FILE, save_sparse

        meta.update(save_sparse(state, out_dir / SPARSE_WEIGHTS_FILE))
        return meta
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    return meta


def stored_heads_per_layer(path: Path) -> list[int] | None:
    """Head counts from a saved config.json without importing torch (None when not recorded)."""
    data = json.loads((Path(path) / CONFIG_FILE).read_text())
    heads = data.get(HEADS_ATTR)
    return [int(h) for h in heads] if heads is not None else None


def load_tokenizer(path: Path) -> Any:
    """The artifact's own tokenizer (files copied into every artifact)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def encode(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Any]:
    """Torch inputs for ``model``: dynamic padding, truncation, only the inputs its forward accepts."""
    import inspect

    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=int(max_length), return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters
    return {k: v for k, v in enc.items() if k in accepted}


def encoder_layers(model: Any) -> tuple[Any, Any]:
    """(owner, ModuleList) of the transformer blocks, where the owner keeps them as ``owner.layer`` (one list).

    Raises UnsupportedArchitectureError, naming the architecture, for nested or shared blocks (ALBERT) or blocks
    kept under another name (ModernBERT's ``model.layers``): callers replace ``owner.layer``.
    """
    try:
        s = find_structure(model)
    except TechniqueError as exc:  # StructureError, or any refusal of the structure finder
        raise UnsupportedArchitectureError(str(exc)) from exc
    if s.shared or s.blocks_owner is None or s.blocks_attr != "layer":
        raise UnsupportedArchitectureError(
            f"{s.name}: its transformer blocks are not one list at encoder.layer / transformer.layer "
            f"({'shared across layers' if s.shared else 'found at ' + s.blocks[0].name.rpartition('.')[0]})"
        )
    return s.blocks_owner, getattr(s.blocks_owner, s.blocks_attr)
