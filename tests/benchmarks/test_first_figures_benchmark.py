"""benchmarks/first_figures.py's pure logic: which variants it launches and how it reads a stored interval."""

import importlib.util

from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location("first_figures_benchmark", REPO / "benchmarks" / "first_figures.py")
first_figures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(first_figures)


def test_variant_choices():
    assert [v["name"] for v in first_figures.variants_for("original", False)] == ["Original"]
    assert [v["name"] for v in first_figures.variants_for("onnx", False)] == ["Original", "ONNX Runtime"]
    seed = first_figures.variants_for("seed", False)
    without = first_figures.variants_for("seed", True)
    distilled = [v for v in seed if any(s.get("technique") == "distill" for s in v["chain"])]
    assert distilled and len(without) == len(seed) - len(distilled)
    assert not any(s.get("technique") == "distill" for v in without for s in v["chain"])
    assert without[0]["name"] == "Original"


def test_interval_reads_the_stored_figures():
    metrics = {"latency_b1_median_ms": 10.0, "latency_b1_ci_low_ms": 9.5, "latency_b1_ci_high_ms": 10.6,
               "latency_b1_rel_half_width": 0.055, "latency_b1_target_rel": 0.05, "latency_b1_target_reached": False,
               "latency_b1_n": 40, "latency_b1_stopped_by": "budget"}
    iv = first_figures.interval(metrics, "b1")
    assert iv == {"median_ms": 10.0, "ci_low_ms": 9.5, "ci_high_ms": 10.6, "rel_half_width": 0.055,
                  "target_rel": 0.05, "target_reached": False, "n": 40, "stopped_by": "budget"}
    assert first_figures.interval(metrics, "bN")["median_ms"] is None
