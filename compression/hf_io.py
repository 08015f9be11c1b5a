"""Load, save and inspect Hugging Face classifiers, including ones with structurally pruned attention heads."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compression.errors import UserError

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


@dataclass
class AttentionHandle:
    """One layer's attention: the module holding the head count and its four projections."""

    module: Any  # the self-attention module (BertSelfAttention / DistilBertSelfAttention / ...)
    query: Any  # nn.Linear, rows grouped by head
    key: Any
    value: Any
    output: Any  # nn.Linear, input columns grouped by head
    heads_attr: str  # "num_attention_heads" (BERT/RoBERTa) or "n_heads" (DistilBERT)
    output_parent: Any = None  # module owning ``output`` (BERT: attention.output; DistilBERT: the module itself)

    @property
    def head_size(self) -> int:
        return int(self.module.attention_head_size)

    @property
    def num_heads(self) -> int:
        return int(getattr(self.module, self.heads_attr))

    def keep_heads(self, keep: list[int]) -> None:
        """Structurally keep only the heads in ``keep`` (original-order indices within this layer)."""
        import torch

        if not keep:
            raise ValueError("cannot remove every attention head of a layer")
        n, d = self.num_heads, self.head_size
        if any(h < 0 or h >= n for h in keep) or len(set(keep)) != len(keep):
            raise ValueError(f"invalid heads to keep {keep} for a layer with {n} heads")
        keep = sorted(keep)
        idx = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
        for name in ("query", "key", "value"):
            self._replace(name, _slice_linear(getattr(self, name), idx, dim=0))
        self._replace("output", _slice_linear(self.output, idx, dim=1))
        setattr(self.module, self.heads_attr, len(keep))
        if hasattr(self.module, "all_head_size"):
            self.module.all_head_size = len(keep) * d

    def _replace(self, role: str, new: Any) -> None:
        """Swap one projection on its owning module and on the handle."""
        names = _DISTIL_NAMES if self.heads_attr == "n_heads" else _BERT_NAMES
        parent = self.output_parent if role == "output" else self.module
        setattr(parent, names[role], new)
        setattr(self, role, new)


# Attribute names of the projections on their owning modules, per layout.
_BERT_NAMES = {"query": "query", "key": "key", "value": "value", "output": "dense"}
_DISTIL_NAMES = {"query": "q_lin", "key": "k_lin", "value": "v_lin", "output": "out_lin"}


def _slice_linear(layer: Any, idx: Any, dim: int) -> Any:
    import torch
    from torch import nn

    weight = layer.weight.detach().index_select(dim, idx).clone()
    bias = layer.bias
    if bias is not None and dim == 0:
        bias = bias.detach().index_select(0, idx).clone()
    elif bias is not None:
        bias = bias.detach().clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.weight.requires_grad_(layer.weight.requires_grad)
    if bias is not None:
        new.bias.requires_grad_(layer.bias.requires_grad)
    return new


def attention_layers(model: Any) -> list[AttentionHandle]:
    """Per-layer attention handles of a BERT-, RoBERTa- or DistilBERT-style model.

    Raises UnsupportedArchitectureError for other architectures.
    """
    base = getattr(model, "base_model", model)
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer"):
        handles = []
        for layer in encoder.layer:
            attn = getattr(layer, "attention", None)
            sa, out = getattr(attn, "self", None), getattr(attn, "output", None)
            if not all(hasattr(sa, a) for a in ("query", "key", "value", "num_attention_heads", "attention_head_size")):
                break
            if not hasattr(out, "dense"):
                break
            handles.append(AttentionHandle(sa, sa.query, sa.key, sa.value, out.dense, "num_attention_heads", out))
        else:
            if handles:
                return handles
    transformer = getattr(base, "transformer", None)
    if transformer is not None and hasattr(transformer, "layer"):
        handles = []
        for layer in transformer.layer:
            sa = getattr(layer, "attention", None)
            if not all(
                hasattr(sa, a) for a in ("q_lin", "k_lin", "v_lin", "out_lin", "n_heads", "attention_head_size")
            ):
                break
            handles.append(AttentionHandle(sa, sa.q_lin, sa.k_lin, sa.v_lin, sa.out_lin, "n_heads", sa))
        else:
            if handles:
                return handles
    raise UnsupportedArchitectureError(
        f"attention heads of model type {model_type!r} are not supported: head pruning and distillation work on "
        "BERT, RoBERTa and DistilBERT style encoders"
    )


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
    return {
        "num_layers": int(config.num_hidden_layers),
        "heads_per_layer": heads,
        "hidden_size": int(config.hidden_size),
        "param_count": count_params(model),
        "model_type": config.model_type,
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
    """(owner, ModuleList) of the transformer blocks: ``encoder.layer`` (BERT/RoBERTa) or ``transformer.layer``."""
    base = getattr(model, "base_model", model)
    for owner_name in ("encoder", "transformer"):
        owner = getattr(base, owner_name, None)
        if owner is not None and hasattr(owner, "layer"):
            return owner, owner.layer
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise UnsupportedArchitectureError(
        f"cannot find the transformer layers of model type {model_type!r}: supported are BERT, RoBERTa and "
        "DistilBERT style encoders"
    )
