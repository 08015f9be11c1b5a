"""Imports every technique module so each registers itself (kept in one list on purpose)."""

import importlib

MODULES = (
    "compression.onnx_export",
    "compression.onnx_int8",
    "compression.onnx_optimize",
    "compression.torchscript",
    "compression.torch_export",
    "compression.torch_int8",
    "compression.torch_compile",
    "compression.head_pruning",
    "compression.distillation",
    "compression.magnitude_pruning",
    "compression.movement_pruning",
    "compression.low_rank",
    "compression.onnx_static_int8",
    "compression.half_precision",
    "compression.qat",
    "compression.openvino_export",
    "compression.openvino_int8",
)

for _name in MODULES:
    importlib.import_module(_name)
