"""A loaded sequence classifier's parts (embeddings, blocks, attention, feed-forward, head), found from its modules."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from compression.meta_model import meta_classifier
from compression.registry import TechniqueError

log = logging.getLogger(__name__)

# Last component of a Linear's module name -> its role in a self-attention. Discovery and readable names share it.
ROLE_NAMES = {
    "query": ("query", "q_lin", "query_proj", "q_proj", "q"),
    "key": ("key", "k_lin", "key_proj", "k_proj", "k"),
    "value": ("value", "v_lin", "value_proj", "v_proj", "v"),
    "qkv": ("Wqkv", "qkv", "qkv_proj", "query_key_value"),
    "output": ("dense", "out_lin", "out_proj", "o_proj", "Wo", "o"),
}
HEAD_COUNT_ATTRS = ("num_attention_heads", "n_heads", "num_heads")
HEAD_SIZE_ATTRS = ("attention_head_size", "head_dim", "head_size")
# Per-architecture facts the module tree does not show. Row order of a fused q/k/v projection: "q|k|v" means all
# query heads, then all key heads, then all value heads (each head_size rows); an unlisted fused layout is refused.
FUSED_LAYOUTS = {"modernbert": "q|k|v"}
# Architectures whose relative-position bias is computed once, per head, for every layer (MPNet's
# encoder.relative_attention_bias): a layer with fewer heads than the others no longer matches it.
SHARED_HEAD_BIAS = {"mpnet": "relative_attention_bias"}
# The display name of a model type in messages (the config's model_type otherwise).
DISPLAY_NAMES = {
    "bert": "BERT",
    "roberta": "RoBERTa",
    "xlm-roberta": "XLM-RoBERTa",
    "distilbert": "DistilBERT",
    "electra": "ELECTRA",
    "albert": "ALBERT",
    "deberta-v2": "DeBERTa-v2/v3",
    "modernbert": "ModernBERT",
    "mpnet": "MPNet",
}


class StructureError(TechniqueError):
    """The model's parts cannot be found (or a technique cannot use them); the message names the architecture."""


def display_name(model_type: str | None) -> str:
    return DISPLAY_NAMES.get(str(model_type), str(model_type or "this model"))


@dataclass
class Attention:
    """One block's self-attention: the module holding the head count, its projections and relative parts."""

    module: Any  # the module whose forward splits into heads (BertSelfAttention, ModernBertAttention, ...)
    head_size: int
    heads_attr: str | None  # attribute on ``module`` keeping the head count (None: implied by the matrix sizes)
    slots: dict[str, tuple[Any, str]]  # role -> (owning module, attribute) of each projection
    names: dict[str, str]  # role -> qualified module name
    relative: tuple[str, ...] = ()  # roles of per-head relative-position projections (sliced with the heads)
    fused_layout: str | None = None  # "q|k|v" for a fused projection
    shared: bool = False  # the same module serves several layers (cross-layer parameter sharing)

    def _get(self, role: str) -> Any:
        slot = self.slots.get(role)
        return getattr(*slot) if slot else None

    @property
    def query(self) -> Any:
        return self._get("query")

    @property
    def key(self) -> Any:
        return self._get("key")

    @property
    def value(self) -> Any:
        return self._get("value")

    @property
    def qkv(self) -> Any:
        return self._get("qkv")

    @property
    def output(self) -> Any:
        return self._get("output")

    @property
    def fused(self) -> bool:
        return "qkv" in self.slots

    @property
    def num_heads(self) -> int:
        if self.heads_attr:
            return int(getattr(self.module, self.heads_attr))
        width = self.qkv.out_features // 3 if self.fused else self.query.out_features
        return width // self.head_size

    def keep_heads(self, keep: list[int]) -> None:
        """Structurally keep only the heads in ``keep`` (current indices within this layer)."""
        import torch

        if not keep:
            raise ValueError("cannot remove every attention head of a layer")
        n, d = self.num_heads, self.head_size
        if any(h < 0 or h >= n for h in keep) or len(set(keep)) != len(keep):
            raise ValueError(f"invalid heads to keep {keep} for a layer with {n} heads")
        if self.fused and self.fused_layout != "q|k|v":
            raise ValueError(f"unknown row layout of the fused projection {self.names['qkv']}")
        idx = torch.cat([torch.arange(h * d, (h + 1) * d) for h in sorted(keep)])
        for role in ("query", "key", "value", *self.relative):
            if role in self.slots:
                self._replace(role, slice_linear(self._get(role), idx, dim=0))
        if self.fused:
            rows = torch.cat([idx + part * n * d for part in range(3)])
            self._replace("qkv", slice_linear(self.qkv, rows, dim=0))
        self._replace("output", slice_linear(self.output, idx, dim=1))
        if self.heads_attr:
            setattr(self.module, self.heads_attr, len(keep))
        if hasattr(self.module, "all_head_size"):
            self.module.all_head_size = len(keep) * d

    def _replace(self, role: str, new: Any) -> None:
        parent, attr = self.slots[role]
        setattr(parent, attr, new)


@dataclass
class Block:
    """One transformer block: its attention and the rest of its Linears (the feed-forward)."""

    index: int
    name: str
    module: Any
    attention: Attention | None
    feed_forward: list[str] = field(default_factory=list)  # qualified names, in order (in, ..., out)


@dataclass
class ModelStructure:
    """Where a classifier keeps its parts; names are qualified torch module names."""

    model_type: str
    base: str  # the encoder model ("bert", "roberta", "model", ...)
    embeddings: str | None
    embedding_linears: list[str]  # Linears between the embeddings and the first block (ELECTRA, ALBERT)
    blocks_owner: Any  # module holding the ModuleList of blocks (a single list; None when nested as in ALBERT)
    blocks_attr: str | None
    blocks: list[Block]
    num_layers: int  # layers the forward runs (config), >= len(blocks) when blocks are shared
    head: list[str]  # pooler and classifier Linears
    heads_key: str  # config key of the head count
    position: str

    @property
    def shared(self) -> bool:
        return len({id(b.module) for b in self.blocks}) < self.num_layers

    @property
    def name(self) -> str:
        return display_name(self.model_type)

    def block_linears(self) -> list[str]:
        """Qualified names of every Linear inside the blocks (attention and feed-forward), in module order."""
        prefixes = tuple(b.name + "." for b in self.blocks)
        return [n for n in self._linears if n.startswith(prefixes)]

    _linears: list[str] = field(default_factory=list, repr=False)

    def attentions(self) -> list[Attention]:
        """Every block's attention; StructureError when some block has none."""
        missing = [b.index for b in self.blocks if b.attention is None]
        if missing or not self.blocks:
            raise StructureError(f"{self.name}: no self-attention with query/key/value projections found in block(s) "
                                 f"{missing or 'none'}")
        return [b.attention for b in self.blocks]  # type: ignore[misc]

    def layer_of(self, linear_name: str) -> int | None:
        """Block index of a Linear (None outside the blocks)."""
        for b in self.blocks:
            if linear_name.startswith(b.name + "."):
                return b.index
        return None

    def summary(self) -> dict[str, Any]:
        """JSON-able facts for the artifact meta (refusals are decided from them before any model is loaded)."""
        first = self.blocks[0].attention if self.blocks else None
        return {
            "model_type": self.model_type,
            "blocks": sorted({b.name.rpartition(".")[0] for b in self.blocks}),
            "num_blocks": len(self.blocks),
            "num_layers": self.num_layers,
            "shared_layers": self.shared,
            "attention": None if first is None else ("fused qkv" if first.fused else "separate q/k/v"),
            "fused_layout": None if first is None else first.fused_layout,
            "heads_key": self.heads_key,
            "head_size": None if first is None else first.head_size,
            "relative_parts": [] if first is None else [first.names[r].rpartition(".")[2] for r in first.relative],
            "position": self.position,
            "shared_head_bias": SHARED_HEAD_BIAS.get(self.model_type),
            "embeddings": self.embeddings,
            "embedding_linears": self.embedding_linears,
            "head": self.head,
            "layer_attr": self.blocks_attr,
        }


def slice_linear(layer: Any, idx: Any, dim: int) -> Any:
    """A new Linear keeping rows (dim 0: outputs, with their bias) or columns (dim 1: inputs) ``idx``."""
    import torch
    from torch import nn

    weight = layer.weight.detach().index_select(dim, idx).clone()
    bias = layer.bias
    if bias is not None:
        bias = bias.detach().index_select(0, idx).clone() if dim == 0 else bias.detach().clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.weight.requires_grad_(layer.weight.requires_grad)
    if bias is not None:
        new.bias.requires_grad_(layer.bias.requires_grad)
    return new


def role_of(leaf: str) -> str | None:
    """The attention role (query, key, value, qkv, output) a Linear's last name component suggests, or None."""
    return next((role for role, names in ROLE_NAMES.items() if leaf in names), None)


def _int_attr(module: Any, names: tuple[str, ...]) -> str | None:
    return next((a for a in names if isinstance(getattr(module, a, None), int)), None)


def _find_attention(block: Any, block_name: str, config: Any, model_type: str) -> Attention | None:
    """The self-attention in one block: q/k/v (or fused qkv) Linears under one parent, and the output projection."""
    from torch import nn

    linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
    parents: dict[str, dict[str, str]] = {}
    for name in linears:
        parent, _, leaf = name.rpartition(".")
        role = role_of(leaf)
        if role in ("query", "key", "value", "qkv"):
            parents.setdefault(parent, {})[role] = name
    found = next(((p, r) for p, r in parents.items() if {"query", "key", "value"} <= r.keys() or "qkv" in r), None)
    if found is None:
        return None
    parent_name, roles = found
    module = block.get_submodule(parent_name) if parent_name else block
    if "qkv" in roles and not {"query", "key", "value"} <= roles.keys():
        roles = {"qkv": roles["qkv"]}
    else:
        roles = {r: roles[r] for r in ("query", "key", "value")}
    width = linears[roles["qkv"]].out_features // 3 if "qkv" in roles else linears[roles["query"]].out_features
    size_attr = _int_attr(module, HEAD_SIZE_ATTRS)
    heads_attr = _int_attr(module, HEAD_COUNT_ATTRS)
    if size_attr:
        head_size = int(getattr(module, size_attr))
    elif heads_attr:
        head_size = width // int(getattr(module, heads_attr))
    else:
        head_size = int(config.hidden_size) // int(config.num_attention_heads)
    taken = set(roles.values())
    # per-head relative-position projections (DeBERTa's pos_key_proj / pos_query_proj): same width, same module
    relative = {}
    for name, lin in linears.items():
        parent, _, leaf = name.rpartition(".")
        if name not in taken and parent == parent_name and lin.out_features == width and leaf.startswith("pos"):
            relative[f"relative:{leaf}"] = name
    taken |= set(relative.values())
    # the output projection: heads-wide input, under the same top-level child of the block as the q/k/v parent
    top = parent_name.split(".")[0] if parent_name else ""
    outputs = [
        n for n, lin in linears.items()
        if n not in taken and lin.in_features == width and role_of(n.rpartition(".")[2]) == "output"
        and (not top or n == top or n.startswith(top + "."))
    ]
    if len(outputs) != 1:
        return None
    roles = {**roles, **relative, "output": outputs[0]}
    slots = {}
    for role, name in roles.items():
        owner, _, attr = name.rpartition(".")
        slots[role] = (block.get_submodule(owner) if owner else block, attr)
    return Attention(
        module=module,
        head_size=head_size,
        heads_attr=heads_attr,
        slots=slots,
        names={r: f"{block_name}.{n}" for r, n in roles.items()},
        relative=tuple(relative),
        fused_layout=FUSED_LAYOUTS.get(model_type) if "qkv" in roles else None,
    )


def _block_lists(base: Any, config: Any, model_type: str) -> list[tuple[str, Any]]:
    """(qualified name, ModuleList) of the innermost ModuleLists whose every element holds a self-attention."""
    from torch import nn

    lists = []
    for name, mod in base.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and all(
            _find_attention(b, "", config, model_type) is not None for b in mod
        ):
            lists.append((name, mod))
    if not lists:  # no attention recognised: the blocks are still the list of num_hidden_layers Linear holders
        layers = getattr(config, "num_hidden_layers", None)
        lists = [
            (name, mod) for name, mod in base.named_modules()
            if isinstance(mod, nn.ModuleList) and len(mod) == layers
            and all(sum(isinstance(x, nn.Linear) for x in b.modules()) >= 2 for b in mod)
        ]
    return [(n, m) for n, m in lists if not any(o.startswith(n + ".") for o, _ in lists)]


def _position(model: Any, config: Any) -> str:
    if getattr(config, "relative_attention", False):
        kinds = "+".join(getattr(config, "pos_att_type", None) or [])
        return f"relative (disentangled{', ' + kinds if kinds else ''})"
    if any("rotary" in type(m).__name__.lower() for m in model.modules()):
        return "rotary"
    kind = getattr(config, "position_embedding_type", None)
    return "absolute" if kind in (None, "absolute") else str(kind)


def find(model: Any) -> ModelStructure:
    """Map a loaded HF sequence classifier to its parts; StructureError (naming the architecture) if no blocks."""
    from torch import nn

    config = model.config
    model_type = str(getattr(config, "model_type", type(model).__name__))
    base = getattr(model, "base_model", model)
    base_name = next((n for n, m in model.named_modules() if m is base), "")
    prefix = base_name + "." if base_name else ""
    lists = _block_lists(base, config, model_type)
    if not lists:
        raise StructureError(
            f"{display_name(model_type)} ({type(model).__name__}): no list of transformer blocks was found (a "
            "ModuleList of blocks with a self-attention, or of num_hidden_layers blocks holding Linear layers)"
        )
    blocks: list[Block] = []
    for list_name, mod in lists:
        for i, blk in enumerate(mod):
            name = f"{prefix}{list_name}.{i}"
            attn = _find_attention(blk, name, config, model_type)
            blocks.append(Block(len(blocks), name, blk, attn))
    num_layers = int(getattr(config, "num_hidden_layers", len(blocks)))
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for b in blocks:
        attn_names = set(b.attention.names.values()) if b.attention else set()
        b.feed_forward = [n for n in linears if n.startswith(b.name + ".") and n not in attn_names]
        if b.attention is not None:
            b.attention.shared = num_layers > len({id(x.module) for x in blocks})
    in_blocks = tuple(b.name + "." for b in blocks)
    outside = [n for n in linears if not n.startswith(in_blocks)]
    embeddings = next((n for n in (f"{prefix}embeddings",) if n in dict(model.named_modules())), None)
    embedding_linears = [n for n in outside if n.startswith(prefix) and "pooler" not in n]
    head = [n for n in outside if n not in embedding_linears]
    owner, attr = None, None
    if len(lists) == 1:
        owner_name, _, attr = lists[0][0].rpartition(".")
        owner = base.get_submodule(owner_name) if owner_name else base
    heads_key = getattr(config, "attribute_map", {}).get("num_attention_heads", "num_attention_heads")
    structure = ModelStructure(
        model_type=model_type, base=base_name, embeddings=embeddings, embedding_linears=embedding_linears,
        blocks_owner=owner, blocks_attr=attr, blocks=blocks, num_layers=num_layers, head=head,
        heads_key=heads_key, position=_position(model, config), _linears=linears,
    )
    return structure


def keep_blocks(model: Any, indices: list[int]) -> None:
    """Keep only the given blocks (a distilled student), in place; StructureError where blocks are not one list."""
    from torch import nn

    s = find(model)
    if s.shared or s.blocks_owner is None:
        raise StructureError(f"{s.name}: its layers are shared or nested, so blocks cannot be dropped one by one")
    layers = getattr(s.blocks_owner, s.blocks_attr)
    setattr(s.blocks_owner, s.blocks_attr, nn.ModuleList([layers[i] for i in indices]))
    for new_idx, block in enumerate(getattr(s.blocks_owner, s.blocks_attr)):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    types = getattr(model.config, "layer_types", None)
    if isinstance(types, list) and len(types) == s.num_layers:
        model.config.layer_types = [types[i] for i in indices]
    model.config.num_hidden_layers = len(indices)


# ---- applicability: decided from the meta (no model loaded) -----------------------------------------------


@functools.lru_cache(maxsize=32)
def summary_for_type(model_type: str) -> dict[str, Any] | None:
    """The structure summary of the architecture's default config, built on the meta device (no weights)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.for_model(model_type)
        config.num_hidden_layers = 2
        return find(meta_classifier(config)).summary()
    except (ValueError, KeyError, StructureError) as exc:
        log.info("no structure for model type %s: %s", model_type, exc)
        return None


def meta_summary(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The artifact's recorded structure, or that of its model type's default config (older artifacts)."""
    s = meta.get("structure")
    if isinstance(s, dict):
        return s
    model_type = meta.get("model_type")
    return summary_for_type(str(model_type)) if model_type else None


def _heads_reason(s: dict[str, Any]) -> str | None:
    if s.get("shared_layers"):
        return (f"its {s['num_layers']} layers share {s['num_blocks']} set(s) of attention weights (cross-layer "
                "parameter sharing), so a head cannot be removed from one layer alone")
    if not s.get("attention"):
        return "no self-attention with separate or fused query/key/value projections was found in its blocks"
    if s.get("shared_head_bias"):
        return (f"its relative-position bias ({s['shared_head_bias']}) is computed once per head for all layers, so "
                "a head cannot be removed from one layer alone")
    if s["attention"] == "fused qkv" and not s.get("fused_layout"):
        return "its fused query/key/value projection has a row layout this tool does not know"
    return None


def _distill_reason(s: dict[str, Any]) -> str | None:
    if s.get("shared_layers"):
        return (f"its {s['num_layers']} layers share {s['num_blocks']} set(s) of weights, so a student with fewer "
                "layers is not made by dropping blocks")
    if s.get("layer_attr") != "layer":
        return (f"the student builder drops blocks of an encoder's 'layer' list; this model keeps them in "
                f"'{'/'.join(s.get('blocks') or ['?'])}' (with per-layer attention types), not supported yet")
    return None


# technique name -> reason function over the structure summary (None: applies)
_REASONS = {"prune-heads": _heads_reason, "distill": _distill_reason, "sensitivity-heads": _heads_reason}
_LABELS = {"sensitivity-heads": "the per-head sensitivity map"}


def refusal(technique: str, meta: dict[str, Any] | None) -> str | None:
    """Why ``technique`` cannot apply to the model described by ``meta`` (naming the architecture), or None."""
    reason_fn = _REASONS.get(technique)
    if reason_fn is None or not meta:
        return None
    s = meta_summary(meta)
    if s is None:
        return None
    reason = reason_fn(s)
    what = _LABELS.get(technique, technique)
    return f"{what} cannot apply to {display_name(s.get('model_type'))}: {reason}" if reason else None


def check(technique: str, meta: dict[str, Any] | None) -> None:
    """StructureError with :func:`refusal`'s message when the technique cannot apply."""
    reason = refusal(technique, meta)
    if reason:
        raise StructureError(reason)
