"""What each technique config declares about itself (read by the CPU advice and the sensitivity page)."""

import compression.techniques  # noqa: F401 - every technique registers itself
from compression.registry import REGISTRY

TAKES_EXCLUDE_LAYERS = {"low-rank", "onnx-int8", "onnx-static-int8", "prune-magnitude", "prune-movement"}


def test_takes_exclude_layers_is_read_from_the_config_fields():
    assert {n for n, t in REGISTRY.items() if t.config_cls.takes_exclude_layers()} == TAKES_EXCLUDE_LAYERS


def test_numeric_kind_is_one_of_the_known_formats():
    for name, technique in REGISTRY.items():
        assert technique.config_cls.numeric_kind() in (None, "int8", "bf16", "fp16"), name
