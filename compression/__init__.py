"""Compression techniques: each a frozen config plus a handler that writes a new artifact.

Importing this package registers every technique; technique modules import torch, onnx and
onnxruntime lazily inside their handlers, so listing techniques stays cheap.
"""

# Technique modules register themselves on import.
from compression import techniques as _techniques  # noqa: F401
from compression.artifact import Artifact
from compression.registry import (
    REGISTRY,
    Context,
    TechniqueConfig,
    TechniqueError,
    apply,
    apply_chain,
    check_chain,
    config_from_json,
    parse_spec,
)

__all__ = [
    "REGISTRY",
    "Artifact",
    "Context",
    "TechniqueConfig",
    "TechniqueError",
    "apply",
    "apply_chain",
    "check_chain",
    "config_from_json",
    "parse_spec",
]
