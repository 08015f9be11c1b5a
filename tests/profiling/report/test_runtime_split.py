"""The runtime vs int8 split of int8 variants' gains, on fake run data (no models)."""

from __future__ import annotations

import pytest

from compression.registry import parse_spec
from profiling.report.runtime_split import runtime_splits, split_frame

ADD_ONNX = "add the `onnx` variant to split this gain"


def _chain(spec: str, full: bool = True) -> list[dict]:
    """A chain as the runner stores it (full config JSON), or as a hand-written request does (technique only)."""
    steps = [s.strip() for s in spec.split(">") if s.strip()]
    return [parse_spec(s).to_json() if full else {"technique": s} for s in steps]


def _v(idx: int, spec: str, b1: float, bn: float, disk: float, status: str = "done", full: bool = True, **extra):
    metrics = {"latency_b1_median_ms": b1, "latency_bN_median_ms": bn, "disk_mib": disk, "batch_size": 8, **extra}
    return {"idx": idx, "name": spec or "original", "chain": _chain(spec, full), "status": status,
            "metrics": metrics if status == "done" else {}}


def _by(splits, variant: str, figure: str = "latency_b1_median_ms"):
    return next(s for s in splits if s.variant == variant and s.figure == figure)


def test_all_three_variants_present_split_the_gain():
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, "onnx", 10.0, 60.0, 88.0, full=False),
                _v(2, "onnx > onnx-int8", 5.0, 30.0, 22.0)]
    splits = runtime_splits(variants, batch_size=8)
    assert {s.figure for s in splits} == {"latency_b1_median_ms", "latency_bN_median_ms", "disk_mib"}
    b1 = _by(splits, "onnx > onnx-int8")
    assert (b1.pytorch, b1.runtime_fp32, b1.runtime) == ("original", "onnx", "ONNX Runtime")
    assert b1.runtime_step.ratio == pytest.approx(2.0) and b1.int8_step.ratio == pytest.approx(2.0)
    assert b1.total.ratio == pytest.approx(4.0)
    assert b1.runtime_share == pytest.approx(0.5)
    assert b1.runtime_step.verdict is None  # no intervals stored: no verdict claimed
    bn = _by(splits, "onnx > onnx-int8", "latency_bN_median_ms")
    assert (bn.runtime_step.ratio, bn.int8_step.ratio, bn.total.ratio) == pytest.approx((1.5, 2.0, 3.0))
    assert bn.label == "Latency b8 median (ms)"
    disk = _by(splits, "onnx > onnx-int8", "disk_mib")
    assert (disk.runtime_step.ratio, disk.int8_step.ratio, disk.total.ratio) == pytest.approx((1.0, 4.0, 4.0))
    assert disk.runtime_share is None  # the runtime step gains nothing: no share to give it
    frame = split_frame(splits)
    row = frame[frame["Figure"] == "Latency b1 median (ms)"].iloc[0]
    assert row["Compared"] == "original \u2192 onnx \u2192 onnx > onnx-int8"
    assert (row["PyTorch fp32 \u2192 runtime fp32"], row["Runtime fp32 \u2192 int8"], row["Total"]) == (
        "2.00\u00d7", "2.00\u00d7", "4.00\u00d7")
    assert row["Share from the runtime"] == "50%"


def test_missing_fp32_runtime_variant_says_which_to_add():
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, "onnx > onnx-int8", 5.0, 30.0, 22.0)]
    b1 = _by(runtime_splits(variants), "onnx > onnx-int8")
    assert b1.runtime_fp32 is None
    assert b1.runtime_step.ratio is None and b1.runtime_step.missing == ADD_ONNX
    assert b1.int8_step.ratio is None and b1.int8_step.missing == ADD_ONNX
    assert b1.total.ratio == pytest.approx(4.0)  # the total needs only the PyTorch model and the int8 one
    row = split_frame([b1]).iloc[0]
    assert row["Runtime fp32 \u2192 int8"] == ADD_ONNX and row["Total"] == "4.00\u00d7"
    assert row["Compared"] == "original \u2192 (missing) \u2192 onnx > onnx-int8"


def test_a_failed_fp32_variant_is_named_not_asked_for():
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, "onnx", 0, 0, 0, status="failed"),
                _v(2, "onnx > onnx-int8", 5.0, 30.0, 22.0)]
    b1 = _by(runtime_splits(variants), "onnx > onnx-int8")
    assert b1.runtime_fp32 == "onnx"
    assert b1.int8_step.missing == "no Latency b1 median (ms) figure for `onnx` (failed)"


def test_a_pytorch_step_before_the_export_is_the_fp32_baseline():
    pruned = "prune-heads:fraction=0.25"
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, pruned, 16.0, 72.0, 80.0), _v(2, f"{pruned} > onnx", 8.0, 48.0, 80.0),
                _v(3, "onnx", 10.0, 60.0, 88.0), _v(4, f"{pruned} > onnx > onnx-int8", 4.0, 24.0, 20.0)]
    b1 = _by(runtime_splits(variants), f"{pruned} > onnx > onnx-int8")
    assert (b1.pytorch, b1.runtime_fp32) == (pruned, f"{pruned} > onnx")  # not the original, not plain onnx
    assert (b1.runtime_step.ratio, b1.int8_step.ratio, b1.total.ratio) == pytest.approx((2.0, 2.0, 4.0))
    # without the pruned PyTorch model: the runtime step and the total ask for it, the int8 step still stands
    b1 = _by(runtime_splits([variants[0], *variants[2:]]), f"{pruned} > onnx > onnx-int8")
    assert b1.pytorch is None
    assert b1.runtime_step.missing == b1.total.missing == f"add the `{pruned}` variant to split this gain"
    assert b1.int8_step.ratio == pytest.approx(2.0)
    # without the pruned ONNX model: it is the one to add, spelled as the CLI takes it
    b1 = _by(runtime_splits([*variants[:2], *variants[3:]]), f"{pruned} > onnx > onnx-int8")
    assert b1.int8_step.missing == f"add the `{pruned} > onnx` variant to split this gain"


def test_static_int8_and_openvino_int8_chains():
    static = "onnx > onnx-static-int8:method=percentile"
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, "onnx", 10.0, 60.0, 88.0), _v(2, static, 8.0, 40.0, 23.0),
                _v(3, "openvino", 12.5, 45.0, 88.0), _v(4, "openvino > openvino-int8", 5.0, 30.0, 23.0),
                _v(5, "onnx > openvino", 10.0, 50.0, 88.0), _v(6, "onnx > openvino > openvino-int8", 4.0, 25.0, 23.0)]
    splits = runtime_splits(variants)
    assert {s.variant for s in splits} == {static, "openvino > openvino-int8", "onnx > openvino > openvino-int8"}
    s = _by(splits, static)
    assert (s.runtime, s.pytorch, s.runtime_fp32) == ("ONNX Runtime", "original", "onnx")
    assert (s.runtime_step.ratio, s.int8_step.ratio) == pytest.approx((2.0, 1.25))
    ov = _by(splits, "openvino > openvino-int8")
    assert (ov.runtime, ov.pytorch, ov.runtime_fp32) == ("OpenVINO", "original", "openvino")
    assert (ov.runtime_step.ratio, ov.int8_step.ratio, ov.total.ratio) == pytest.approx((1.6, 2.5, 4.0))
    via = _by(splits, "onnx > openvino > openvino-int8")  # OpenVINO from the ONNX export: both are the runtime step
    assert (via.pytorch, via.runtime_fp32) == ("original", "onnx > openvino")
    assert (via.runtime_step.ratio, via.int8_step.ratio) == pytest.approx((2.0, 2.5))


def test_other_chains_have_no_split():
    variants = [_v(0, "", 20.0, 90.0, 88.0), _v(1, "onnx", 10.0, 60.0, 88.0), _v(2, "onnx > onnx-fp16", 9.0, 50.0, 44.0),
                _v(3, "torch-int8", 12.0, 50.0, 30.0), _v(4, "qat", 20.0, 90.0, 88.0),
                _v(5, "onnx > onnx-int8 > openvino", 5.0, 30.0, 22.0),
                _v(6, "onnx > onnx-int8", 5.0, 30.0, 22.0, status="building")]
    assert runtime_splits(variants) == []  # fp16, PyTorch int8, QAT, int8 then converted, an unfinished int8


def test_overlapping_intervals_are_within_noise():
    ci = {
        "original": {"latency_b1_ci_low_ms": 19.0, "latency_b1_ci_high_ms": 21.0},
        "onnx": {"latency_b1_ci_low_ms": 9.5, "latency_b1_ci_high_ms": 10.5},
        "int8": {"latency_b1_ci_low_ms": 9.0, "latency_b1_ci_high_ms": 9.8, "latency_b1_noisy": True},
    }
    variants = [_v(0, "", 20.0, 90.0, 88.0, **ci["original"]), _v(1, "onnx", 10.0, 60.0, 88.0, **ci["onnx"]),
                _v(2, "onnx > onnx-int8", 9.4, 30.0, 22.0, **ci["int8"])]
    b1 = _by(runtime_splits(variants), "onnx > onnx-int8")
    assert b1.runtime_step.verdict == "faster"
    assert b1.int8_step.verdict == "within noise" and b1.int8_step.noisy
    assert b1.total.verdict == "faster"
    assert b1.runtime_share is None  # a step within noise gets no share of the gain
    assert b1.int8_step.text() == "1.06\u00d7 (within noise, noisy measurement)"
    assert b1.runtime_step.text() == "2.00\u00d7 (faster)"
    bn = _by(runtime_splits(variants), "onnx > onnx-int8", "latency_bN_median_ms")
    assert bn.int8_step.verdict is None  # no bN intervals stored: the ratio alone, no claim either way


def test_raw_timings_give_intervals_too():
    raw = {"original": [20.0, 20.2, 19.8] * 10, "onnx": [10.0, 10.3, 9.7] * 10, "int8": [9.9, 10.2, 9.8] * 10}
    variants = [_v(0, "", 20.0, 90.0, 88.0, latency_b1_ms=raw["original"]),
                _v(1, "onnx", 10.0, 60.0, 88.0, latency_b1_ms=raw["onnx"]),
                _v(2, "onnx > onnx-int8", 9.9, 30.0, 22.0, latency_b1_ms=raw["int8"])]
    b1 = _by(runtime_splits(variants), "onnx > onnx-int8")
    assert (b1.runtime_step.verdict, b1.int8_step.verdict) == ("faster", "within noise")


def test_workloads_and_lineage_only_variants():
    def wl(ms: float) -> dict:
        return {"workloads": [{"label": "bucketed:8", "ms_per_batch": ms}]}

    variants = [_v(0, "", 20.0, 90.0, 88.0, **wl(80.0)), _v(1, "onnx", 10.0, 60.0, 88.0, **wl(40.0)),
                _v(2, "onnx > onnx-int8", 5.0, 30.0, 22.0, **wl(32.0))]
    for v in variants:  # a run stored with lineage specs only
        v["lineage"] = [c["technique"] for c in v.pop("chain")]
    s = _by(runtime_splits(variants), "onnx > onnx-int8", "workload:bucketed:8")
    assert s.label == "bucketed:8 (ms / batch)"
    assert (s.runtime_step.ratio, s.int8_step.ratio, s.total.ratio) == pytest.approx((2.0, 1.25, 2.5))


def test_the_html_report_has_the_split(tmp_path):
    from profiling.report.html import build_html
    from tests.helpers.fake_runs import fake_store

    store, run_id = fake_store(tmp_path)
    page = build_html(store, run_id)
    assert "Where the int8 gain comes from" in page
    assert "original \u2192 onnx \u2192 onnx-int8" in page and "4.00\u00d7" in page
