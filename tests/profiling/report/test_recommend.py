"""Recommendations under limits: hand-computed cases."""

from __future__ import annotations

import pytest

from profiling.report.recommend import Limits, evaluate, headline, p95_footnote, p95_ms, recommend, summary


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


def test_no_limits_never_trades_accuracy_away_unseen():
    # no per-example predictions: int8, the fastest, is 3 points lower (> FALLBACK_DROP_PTS): ruled out, and said
    verdicts = evaluate(VARIANTS, Limits())
    assert [v.name for v in verdicts] == ["original", "onnx", "int8", "pruned"]  # failed variants left out
    assert [v.name for v in verdicts if v.recommended] == ["pruned"]  # 0.5 points lower, the next fastest
    assert verdicts[2].accuracy_drop_pts == pytest.approx(3.0)
    assert verdicts[2].reasons == [("accuracy drop 3.0 pts; no accuracy limit set and no per-example predictions "
                                    "to test noise: at most 1.0 pts assumed")]
    assert "within noise of the original's accuracy assumed" in summary(verdicts, Limits())
    # an explicit accuracy limit replaces the assumption
    loose = evaluate(VARIANTS, Limits(max_accuracy_drop_pts=5.0))
    assert [v.name for v in loose if v.recommended] == ["int8"]
    assert "assumed" not in summary(loose, Limits(max_accuracy_drop_pts=5.0))


def _change(labels_n: int, only_orig: int, only_var: int):
    """An AccuracyChange with ``only_orig`` examples only the original got right and ``only_var`` the reverse."""
    from profiling.measure.stats import accuracy_change

    labels = [0] * labels_n
    orig = [1] * only_var + [0] * (labels_n - only_var)
    var = [0] * only_var + [1] * only_orig + [0] * (labels_n - only_var - only_orig)
    return accuracy_change(labels, orig, var)


def test_no_limits_uses_mcnemar_when_predictions_exist():
    # int8: 3 points lower, but 6 vs 0 discordant of 200 (p = 2/64 < 0.05): a real drop -> ruled out;
    # pruned: 1 vs 0 (p = 1): within noise -> allowed although its figures differ
    changes = {1: _change(200, 0, 0), 2: _change(200, 6, 0), 3: _change(200, 1, 0)}
    verdicts = {v.name: v for v in evaluate(VARIANTS, Limits(), changes)}
    assert verdicts["int8"].reasons[0].startswith("accuracy \u22123.0 pts, a real drop by McNemar (p=0.031)")
    assert verdicts["int8"].reasons[0].endswith("within noise of the original's accuracy assumed")
    assert verdicts["pruned"].recommended
    line = headline(list(verdicts.values()), Limits())
    # pruned: p95 12.0 against the original's 38.1 = 3.2x; 60 / 87 MiB = 0.69x; -0.5 points from the change
    assert line.startswith("**Recommended: pruned**: **3.2\u00d7 faster** than the original (p95, batch 1), **0.69\u00d7 the size** on "
                           "disk, accuracy \u22120.5 points (95 % CI ")
    assert line.endswith("within noise). No accuracy limit is set: within noise of the original's accuracy is "
                         "assumed.")


def test_headline_when_nothing_qualifies_and_p95_footnote():
    verdicts = evaluate(VARIANTS, Limits(max_p95_ms=5.0))
    assert headline(verdicts, Limits(max_p95_ms=5.0)).startswith(
        "**No variant qualifies** under the current limits: each breaks at least one (most often: p95 latency)")
    # each variant named once; the three with raw timings have 20 each, pruned a stored p95 only
    assert p95_footnote(verdicts) == ("p95 of the 20 raw batch-1 timings of each of original, onnx, int8; "
                                      "stored p95 only: pruned")


def test_limits_rule_out_with_the_numbers():
    verdicts = {v.name: v for v in evaluate(VARIANTS, Limits(max_accuracy_drop_pts=1.0, max_disk_mib=80.0))}
    assert verdicts["int8"].reasons == ["accuracy drop 3.0 pts > limit 1.0 pts"]
    assert verdicts["original"].reasons == ["size on disk 87.0 MiB > limit 80.0 MiB"]
    assert verdicts["onnx"].reasons == ["size on disk 87.5 MiB > limit 80.0 MiB"]
    assert verdicts["pruned"].meets and verdicts["pruned"].recommended
    assert summary(list(verdicts.values())).startswith("Recommended: pruned (12.0 ms p95); 1 of 4")


def test_several_limits_listed_and_none_met():
    limits = Limits(max_accuracy_drop_pts=5.0, max_p95_ms=10.0, max_ram_mib=220.0)
    verdicts = {v.name: v for v in evaluate(VARIANTS, limits)}
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
