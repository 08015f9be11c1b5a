"""Imports every technique module so each registers itself (kept in one list on purpose)."""

import importlib
import logging

log = logging.getLogger(__name__)

MODULES = (
    "compression.onnx_export",
    "compression.onnx_int8",
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
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a module not written yet must not break the others
        if exc.name != _name:
            raise
        log.debug("technique module %s not present", _name)
