"""Compact storage of sparse weights: per tensor a packed bitmask plus its nonzero values, in safetensors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPARSE_WEIGHTS_FILE = "model.sparse.safetensors"
_MASK = ".__sparse_mask"
_VALUES = ".__sparse_values"
_META_KEY = "sparse_shapes"


def _bits(t: Any) -> Any:
    """The tensor's raw bit pattern as integers (so -0.0 counts as a stored value and loads back bit-exact)."""
    import torch

    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.contiguous().view(ints[t.element_size()])


def pack(t: Any) -> tuple[Any, Any]:
    """(packed bitmask uint8, values of the set bits in row-major order) of a floating-point tensor."""
    import numpy as np
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    keep = _bits(flat) != 0
    mask = torch.from_numpy(np.packbits(keep.numpy()))
    return mask, flat[keep].clone()


def unpack(mask: Any, values: Any, shape: list[int]) -> Any:
    """Inverse of :func:`pack`: a dense tensor with zeros where the mask bit is unset."""
    import math

    import numpy as np
    import torch

    n = math.prod(shape)
    keep = torch.from_numpy(np.unpackbits(mask.numpy(), count=n).astype(bool))
    if int(keep.sum()) != values.numel():
        raise ValueError(f"corrupt sparse tensor: mask has {int(keep.sum())} set bits but {values.numel()} values")
    out = torch.zeros(n, dtype=values.dtype)
    out[keep] = values
    return out.reshape(shape)


def worth_packing(t: Any) -> bool:
    """True when mask + values take fewer bytes than the dense tensor (float tensors of at least 2 dims)."""
    if not t.is_floating_point() or t.dim() < 2:
        return False
    nonzero = int((_bits(t.reshape(-1)) != 0).sum())
    return nonzero * t.element_size() + (t.numel() + 7) // 8 < t.numel() * t.element_size()


def save_sparse(state: dict[str, Any], path: Path) -> dict[str, int]:
    """Write ``state`` with sparse-enough float matrices packed; returns counts for the artifact meta."""
    from safetensors.torch import save_file

    out: dict[str, Any] = {}
    shapes: dict[str, list[int]] = {}
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        if worth_packing(t):
            mask, values = pack(t)
            out[name + _MASK], out[name + _VALUES] = mask, values
            shapes[name] = list(t.shape)
        else:
            out[name] = t
    save_file(out, str(path), metadata={"format": "pt", _META_KEY: json.dumps(shapes)})
    return {"packed_tensors": len(shapes)}


def load_sparse(path: Path) -> dict[str, Any]:
    """Dense state dict from a file written by :func:`save_sparse` (bit-exact)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        shapes = json.loads(meta.get(_META_KEY, "{}"))
        raw = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    state = {}
    for name, shape in shapes.items():
        try:
            state[name] = unpack(raw.pop(name + _MASK), raw.pop(name + _VALUES), shape)
        except KeyError as exc:
            raise ValueError(f"corrupt sparse weights file {path}: {exc} missing") from None
    state.update(raw)
    return state


def load_sparse_into(model: Any, path: Path) -> None:
    """Strictly load a file written by :func:`save_sparse` into ``model``, one tensor at a time (low peak RAM)."""
    import torch
    from safetensors import safe_open

    target = model.state_dict()
    with safe_open(str(path), framework="pt") as fh:
        shapes = json.loads((fh.metadata() or {}).get(_META_KEY, "{}"))
        stored = set(shapes) | {k for k in fh.keys() if not k.endswith((_MASK, _VALUES))}  # noqa: SIM118
        missing, unexpected = sorted(set(target) - stored), sorted(stored - set(target))
        if missing or unexpected:
            raise ValueError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for name, dest in target.items():
                if name in shapes:
                    t = unpack(fh.get_tensor(name + _MASK), fh.get_tensor(name + _VALUES), shapes[name])
                else:
                    t = fh.get_tensor(name)
                if t.shape != dest.shape:
                    raise ValueError(f"{path}: {name} has shape {list(t.shape)}, the model expects {list(dest.shape)}")
                dest.copy_(t)


def sparsity(t: Any) -> float:
    """Fraction of exactly-zero entries."""
    return float((t == 0).sum()) / max(1, t.numel())
