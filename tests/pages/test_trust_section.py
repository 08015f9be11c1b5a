"""AppTest of the Results page's uncertainty parts: latency intervals and verdicts, accuracy tests, RSS vs USS, CPU."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from profiling.report import frames as rd
from profiling.report import uncertainty
from profiling.store.runs import RunStore
from tests.helpers import REPO
from tests.helpers.fake_runs import LABELS, METRICS, ORIG_PREDS, build_fake_run

PAGE = REPO / "pages" / "results.py"


def _texts(column) -> list:
    return [x if isinstance(x, str) else None for x in column]  # a missing value may come back as NaN


def _raw(center: float, spread: float, n: int = 30, seed: int = 0) -> list[float]:
    return (center + spread * np.random.default_rng(seed).standard_normal(n)).round(3).tolist()


def _with_latency(store: RunStore) -> str:
    """The fake run with raw latency values: onnx as fast as the original (overlapping intervals), int8 faster;
    the original measured under heavy CPU contention; the int8 variant with the newer memory figures."""
    run_id = build_fake_run(store)
    raws = {0: _raw(20.0, 0.5), 1: _raw(20.1, 0.5, seed=1), 2: _raw(5.0, 0.2, seed=2)}
    env = {"cpu_model": "Old CPU", "cpu_flags": {"avx2": True, "avx512_vnni": False}, "usable_cores": 2}
    store.set_run_env(run_id, env)
    for v in store.variants(run_id):
        m = dict(v["metrics"])
        m["latency_b1_ms"] = raws[v["idx"]]
        m["latency_b1_median_ms"] = float(np.median(raws[v["idx"]]))
        if v["idx"] == 0:
            m.update(latency_b1_noisy=True, latency_b1_other_cpu_frac=0.42, latency_b1_steal_frac=0.0)
        if v["idx"] == 2:
            m.update(peak_rss_source="kernel high-water mark", peak_rss_phase="load", peak_rss_sampled_mib=180.0,
                     peak_rss_missed_mib=20.0,
                     rusage_maxrss_mib=201.0, uss_mib=120.0, rss_file_mib=60.0)
        store.upsert_variant(run_id, v["idx"], metrics=m)
    return run_id


def test_the_reference_table_shows_intervals_and_noise_verdicts(store):
    run_id = _with_latency(store)
    variants = store.variants(run_id)
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in variants}
    table = rd.table_frame(rd.metrics_frame(variants, preds, LABELS, 2))
    assert _texts(table["b1 vs original"]) == [None, "within noise", "faster"]
    low, high = (float(x) for x in table["Latency b1 95 % CI (ms)"][0].split(" \u2013 "))
    assert low <= table["Latency b1 median (ms)"][0] <= high and high - low < 1.0
    assert table["Latency b8 95 % CI (ms)"].isna().all()  # no raw bN values stored: no interval, no verdict
    # int8: fixes 1 example, breaks 2 -> -8.3 points, McNemar on 3 discordant pairs: p = 1
    assert _texts(table["Accuracy vs original"]) == [None, "+0.0 pts, p=1: within noise",
                                                      "\u22128.3 pts, p=1: within noise"]


def test_the_results_page_shows_the_trust_section(store):
    run_id = _with_latency(store)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    trust = next(df.value for df in at.dataframe if "vs original" in df.value.columns)
    assert _texts(trust["vs original"]) == ["reference", "within noise", "faster"]
    assert (trust["Target"] == "fixed repeats").all() and trust["Repeats"].tolist() == [30, 30, 30]
    warnings = " ".join(w.value for w in at.warning)
    assert "Noisy measurements" in warnings and "other processes used 42% of the CPU" in warnings
    # the run's CPU has no VNNI: the int8 variant gets the advice, judged on the run's recorded CPU
    assert "onnx-int8" in warnings and "VNNI" in warnings
    text = " ".join(m.value for m in at.markdown)
    assert "\u22128.3 points (95 % CI" in text and "McNemar p=1: within noise" in text
    from profiling.measure.stats import ACCURACY_TEST
    assert text.count(ACCURACY_TEST) == 1  # which test decides is said once, not per line
    assert "Peak RAM is the peak resident set size (RSS)" in text and "USS" in text
    mem = next(df.value for df in at.dataframe if "USS at end (MiB)" in df.value.columns)
    assert mem["Peak from"].tolist() == ["sampled", "sampled", "kernel high-water mark"]
    assert any("Old CPU" in c.value and "AVX2" in c.value for c in at.caption)
    assert any("onnx-int8: 200 MiB during load, 20 MiB above the highest sample" in c.value for c in at.caption)


def test_old_runs_get_intervals_from_raw_values():
    m = {"latency_b1_ms": [10.0, 11.0, 12.0, 13.0, 14.0], "latency_b1_median_ms": 12.0}
    median, low, high = uncertainty.latency_ci(m, "b1")
    assert median == 12.0 and 10.0 <= low < 12.0 < high <= 14.0
    stored = {**m, "latency_b1_ci_low_ms": 11.5, "latency_b1_ci_high_ms": 12.5}
    assert uncertainty.latency_ci(stored, "b1") == (12.0, 11.5, 12.5)
    assert uncertainty.latency_ci({}, "b1") is None
    changes = uncertainty.accuracy_changes(
        [{"idx": 0}, {"idx": 1}], {0: {"preds": ORIG_PREDS}, 1: {"preds": [1 - p for p in ORIG_PREDS]}}, LABELS
    )
    assert changes[1].only_original_right == 10 and changes[1].only_variant_right == 2
    assert METRICS[0]["batch_size"] == 8
