"""Recommendations under limits: hand-computed cases."""

from __future__ import annotations

import pytest

from profiling.report.recommend import Limits, evaluate, p95_ms, recommend, summary


def _v(idx, name, acc, disk, ram, raw=None, p95=None, status="done"):
    m = {"accuracy": acc, "disk_mib": disk, "peak_rss_mib": ram}
    if raw is not None:
        m["latency_b1_ms"] = raw
    if p95 is not None:
        m["latency_b1_p95_ms"] = p95
    return {"idx": idx, "name": name, "status": status, "metrics": m}


# raw timings 1..20 ms: numpy linear p95 = 1 + 0.95 * 19 = 19.05
RAW_20 = [float(x) for x in range(1, 21)]
VARIANTS = [
    _v(0, "original", 0.850, 87.0, 610.0, raw=[x * 2 for x in RAW_20]),  # p95 38.1
    _v(1, "onnx", 0.850, 87.5, 300.0, raw=RAW_20),  # p95 19.05
    _v(2, "int8", 0.820, 22.0, 200.0, raw=[x / 2 for x in RAW_20]),  # p95 9.525, drop 3 pts
    _v(3, "pruned", 0.845, 60.0, 250.0, p95=12.0),  # stored p95 only, drop 0.5 pts
    _v(4, "broken", None, None, None, status="failed"),
]


def test_p95_from_raw_timings_else_stored():
    assert p95_ms({"latency_b1_ms": RAW_20}) == (pytest.approx(19.05), "p95 of 20 raw timings")
    assert p95_ms({"latency_b1_p95_ms": 7.0}) == (7.0, "stored p95")
    assert p95_ms({"latency_b1_p90_ms": 7.0})[0] is None


def test_no_limits_recommends_the_fastest():
    verdicts = evaluate(VARIANTS, Limits())
    assert [v.name for v in verdicts] == ["original", "onnx", "int8", "pruned"]  # failed variants left out
    assert [v.name for v in verdicts if v.recommended] == ["int8"]
    assert verdicts[2].accuracy_drop_pts == pytest.approx(3.0)


def test_limits_rule_out_with_the_numbers():
    verdicts = {v.name: v for v in evaluate(VARIANTS, Limits(max_accuracy_drop_pts=1.0, max_disk_mib=80.0))}
    assert verdicts["int8"].reasons == ["accuracy drop 3.0 pts > limit 1.0 pts"]
    assert verdicts["original"].reasons == ["size on disk 87.0 MiB > limit 80.0 MiB"]
    assert verdicts["onnx"].reasons == ["size on disk 87.5 MiB > limit 80.0 MiB"]
    assert verdicts["pruned"].meets and verdicts["pruned"].recommended
    assert summary(list(verdicts.values())).startswith("Recommended: pruned (12.0 ms p95); 1 of 4")


def test_several_limits_listed_and_none_met():
    verdicts = {v.name: v for v in evaluate(VARIANTS, Limits(max_p95_ms=10.0, max_ram_mib=220.0))}
    assert verdicts["original"].reasons == ["p95 latency 38.1 ms > limit 10.0 ms", "peak RAM 610.0 MiB > limit 220.0 MiB"]
    assert verdicts["int8"].recommended  # p95 9.5 <= 10, RAM 200 <= 220
    verdicts = evaluate(VARIANTS, Limits(max_p95_ms=5.0))
    assert recommend(verdicts) is None
    assert "No finished variant meets all the limits" in summary(verdicts)


def test_ties_go_to_the_smaller_size():
    vs = [_v(0, "a", 0.8, 50.0, 100.0, p95=10.0), _v(1, "b", 0.8, 40.0, 120.0, p95=10.0)]
    assert recommend(evaluate(vs, Limits())).name == "b"


def test_unknown_figure_under_a_limit_rules_out():
    vs = [_v(0, "orig", 0.8, 50.0, 100.0, p95=10.0), _v(1, "no-disk", 0.8, None, 100.0, p95=1.0)]
    verdicts = evaluate(vs, Limits(max_disk_mib=60.0))
    assert verdicts[1].reasons == ["size on disk unknown (not measured), limit 60.0 MiB"]
    assert verdicts[0].recommended


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_disk_mib must be positive"):
        Limits(max_disk_mib=0)
    with pytest.raises(ValueError, match="max_p95_ms must be a finite number"):
        Limits(max_p95_ms=float("nan"))
