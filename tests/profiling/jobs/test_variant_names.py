"""Variant names say what sets a variant apart: two chains that differ never share a name."""

from __future__ import annotations

from profiling.cli import parse_techniques
from profiling.jobs.presets import PRESETS, variant


def test_onnx_int8_options_are_in_the_name():
    plain = variant(["onnx", "onnx-int8"])["name"]
    reduced = variant(["onnx", "onnx-int8:reduce_range=true"])["name"]
    assert plain == "ONNX Runtime int8"
    assert reduced == "ONNX Runtime int8 (reduce_range=true)"


def test_cli_techniques_get_distinct_names():
    names = [v["name"] for v in parse_techniques("onnx-int8,onnx-int8:reduce_range=true,torch-int8,"
                                                  "prune-heads:0.5,prune-heads:fraction=0.5,method=importance")]
    assert len(set(names)) == len(names), names
    assert names[:2] == ["ONNX Runtime int8", "ONNX Runtime int8 (reduce_range=true)"]


def test_preset_names_are_unique():
    for preset, variants in PRESETS.items():
        names = [v["name"] for v in variants]
        assert len(set(names)) == len(names), (preset, names)
