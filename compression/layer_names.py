"""Linear layers by torch module name, their readable labels, and the ONNX MatMul/Gemm nodes they became."""

from __future__ import annotations

import ast
import dataclasses
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from compression.meta_model import meta_classifier

log = logging.getLogger(__name__)

# The exporter wraps the classifier in compression.torch_wrap.logits_module, which holds it as ``model``.
WRAPPER_PREFIX = "model."
LINEAR_OPS = ("MatMul", "Gemm")

# Feed-forward Linears by their name inside a block (attention roles come from compression.structure.ROLE_NAMES).
_FEED_FORWARD = {
    "intermediate.dense": "feed-forward in",
    "output.dense": "feed-forward out",
    "ffn.lin1": "feed-forward in",
    "ffn.lin2": "feed-forward out",
    "ffn": "feed-forward in",
    "ffn_output": "feed-forward out",
    "mlp.Wi": "feed-forward in",
    "mlp.Wo": "feed-forward out",
}
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers)\.(\d+)\.(.+)$")
_SHARED = re.compile(r"(?:^|\.)albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.+)$")
_EMBEDDING_LINEARS = ("embeddings_project", "embedding_hidden_mapping_in")


def part_label(rest: str) -> str:
    """The readable role of a Linear from its name inside a block: ``attention.self.query`` -> ``attention query``."""
    from compression.structure import role_of

    if rest in _FEED_FORWARD:
        return _FEED_FORWARD[rest]
    parts = rest.split(".")
    leaf, top = parts[-1], parts[0]
    if len(parts) > 1 and ("attention" in top or top in ("attn", "self_attn")):
        if leaf.startswith("pos_"):
            return "attention relative " + leaf.removeprefix("pos_").removesuffix("_proj").replace("_", " ")
        role = role_of(leaf)
        if role == "qkv":
            return "attention query/key/value"
        if role is not None:
            return f"attention {role}"
    return rest.replace(".", " ")


def readable(module_name: str) -> str:
    """``bert.encoder.layer.3.attention.self.query`` -> ``layer 3 · attention query``; others made legible."""
    m = _SHARED.search(module_name)
    if m:  # ALBERT: one block serves every layer
        block = m.group(1) if m.group(2) == "0" else f"{m.group(1)}.{m.group(2)}"
        return f"shared block {block} · {part_label(m.group(3))}"
    m = _LAYER.search(module_name)
    if m:
        return f"layer {m.group(1)} · {part_label(m.group(2))}"
    if module_name.endswith(("pooler.dense", "pooler")):
        return "pooler"
    if module_name.endswith(_EMBEDDING_LINEARS):
        return "embedding projection"
    if module_name.startswith(("classifier", "pre_classifier")):
        return module_name.replace(".", " ").replace("_", " ")
    if module_name.startswith("head."):  # ModernBERT's prediction head before the classifier
        return "classifier " + module_name.replace(".", " ")
    return module_name


def linear_layers(model_or_config: Any) -> list[tuple[str, str]]:
    """(torch module qualified name, readable label) of every nn.Linear, in module order.

    Takes a model, or an hf config / artifact folder (the architecture is then built on the meta device,
    so no weights are allocated).
    """
    model = model_or_config
    if isinstance(model, str | Path) or not hasattr(model, "named_modules"):
        model = meta_classifier(model)
    from torch import nn

    return [(name, readable(name)) for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]


def _scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                value = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            return [str(v) for v in value] if isinstance(value, list) else []
    return []


def _is_linear_call(node: Any) -> bool:
    return any(p.key == "pkg.torch.onnx.fx_node" and "aten.linear" in p.value for p in node.metadata_props)


def node_module(node: Any) -> str | None:
    """The torch module name an ONNX MatMul/Gemm node came from, or None (attention score products, unknown)."""
    if node.op_type not in LINEAR_OPS:
        return None
    scopes = _scopes(node)
    if scopes and _is_linear_call(node) and len(scopes) >= 2:
        # dynamo exporter: [..., 'model.bert.encoder.layer.0.attention.self.query', 'linear']
        name = scopes[-2]
        return name.removeprefix(WRAPPER_PREFIX)
    # TorchScript exporter: /model/bert/encoder/layer.0/attention/self/query/MatMul
    if node.name.startswith("/") and node.name.count("/") >= 3:
        parts = node.name.strip("/").split("/")[:-1]
        name = ".".join(parts)
        return name.removeprefix(WRAPPER_PREFIX)
    return None


def onnx_linear_nodes(model: Any) -> dict[str, list[str]]:
    """torch module name -> names of the ONNX MatMul/Gemm nodes computing it (``model`` is an onnx.ModelProto)."""
    out: dict[str, list[str]] = {}
    for node in model.graph.node:
        module = node_module(node)
        if module:
            out.setdefault(module, []).append(node.name)
    return out


def exclude_layers_field(kept: str = "keep in float") -> Any:
    """The ``exclude_layers`` option of a technique acting on Linear layers (what it leaves them as: ``kept``)."""
    return dataclasses.field(
        default="",
        metadata={
            "help": f"Torch module names of Linear layers to {kept}, separated by + (or commas outside a spec "
            "string), e.g. bert.encoder.layer.3.attention.self.query+bert.encoder.layer.3.output.dense; the "
            "sensitivity map lists the most sensitive ones."
        },
    )


def parse_layer_list(value: str) -> tuple[str, ...]:
    """Module names separated by commas, ``+``, ``;`` or spaces -> a tuple (blanks and repeats dropped, order kept).

    ``+`` is the canonical separator (:func:`canonical_layer_list`) because a technique spec string
    (``onnx-int8:exclude_layers=a+b``) already uses commas between options.
    """
    if not isinstance(value, str):
        raise ValueError(f"exclude_layers must be module names separated by + or commas, got {value!r}")  # noqa: TRY004
    names = [p for p in re.split(r"[,+;\s]+", value) if p]
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][\w.]*", n)]
    if bad:
        raise ValueError(f"exclude_layers: {bad[0]!r} is not a module name like bert.encoder.layer.3.attention.self.query")
    return tuple(dict.fromkeys(names))


def canonical_layer_list(value: str) -> str:
    """The ``+``-joined form of a layer list (so a config's spec string parses back to the same config)."""
    return "+".join(parse_layer_list(value))


def nodes_to_exclude(model: Any, modules: Iterable[str]) -> list[str]:
    """ONNX node names of the given torch Linear modules; a name that is not found raises ValueError."""
    modules = list(modules)
    mapping = onnx_linear_nodes(model)
    if modules and not mapping:
        raise ValueError(
            "exclude_layers: this ONNX graph records no torch module names (graphs fused by ORT's transformer "
            "optimizer, onnx:optimize=true, lose them); export with plain onnx to exclude layers"
        )
    nodes: list[str] = []
    for name in modules:
        if name not in mapping:
            known = ", ".join(sorted(mapping)[:6])
            raise ValueError(
                f"exclude_layers: no ONNX MatMul/Gemm comes from module {name!r} in this graph (e.g. {known}"
                f"{', ...' if len(mapping) > 6 else ''}); graphs fused by the ORT transformer optimizer "
                "(onnx:optimize=true) lose the attention projections' names"
            )
        nodes += mapping[name]
    return nodes
