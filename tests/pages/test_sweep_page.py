"""AppTest: a stored sweep is plotted on the Results page (one chart per sequence length, lines per thread count);
a sweep of a run's variants is launched from the page as a background job and its points drawn from the store."""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.sweep import points_frame, sweep_figure
from profiling.jobs.sweep import SweepSpec, save_sweep
from tests.helpers import REPO
from tests.helpers.fake_runs import build_fake_run

PAGE = REPO / "pages" / "results.py"


def _point(variant: str, batch: int, seq, threads: int, ms: float) -> dict:
    return {"variant": variant, "idx": 0, "artifact": "/nowhere", "batch_size": batch, "seq_len": seq,
            "threads": threads, "ok": True, "error": None, "peak_rss_mib": 300.0, "load_time_s": 0.1,
            "pass_ms": [ms * 2], "pass_median_ms": ms * 2, "ms_per_batch": ms, "texts_per_s": batch * 1000 / ms,
            "real_tokens_per_s": 1.0, "padding_waste": 0.0 if seq != "real" else 0.3, "n_batches": 2,
            "mean_batch_width": 32}


# A hand-written grid (not measurements): 2 variants x batch 1, 8 x seq 32, real x threads 1, 2.
POINTS = [_point(v, b, s, t, ms=(b * 3.0 + (10 if v == "Original" else 4)) / t)
          for v in ("Original", "onnx") for t in (1, 2) for s in (32, "real") for b in (1, 8)]


def test_sweep_figure_has_a_line_per_variant_and_thread_count():
    fig = sweep_figure(POINTS, "32")
    assert [t.name for t in fig.data] == ["Original · 1 thr", "Original · 2 thr", "onnx · 1 thr", "onnx · 2 thr"]
    assert list(fig.data[0].x) == [1, 8] and list(fig.data[0].y) == [13.0, 34.0]
    assert fig.data[0].line.dash != fig.data[1].line.dash and fig.data[0].line.color == fig.data[1].line.color
    thr = sweep_figure(POINTS, "real", "texts_per_s")
    assert thr.data[0].y[0] == pytest.approx(1000 / 13.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        sweep_figure(POINTS, "32", "accuracy")
    assert len(points_frame(POINTS)) == 16


def test_results_page_plots_a_stored_sweep(store):
    run_id = build_fake_run(store)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert any("nothing to sweep" in c.value for c in at.caption)  # no model files on disk: no sweep form
    save_sweep(store.path, run_id, SweepSpec(batch_sizes=(1, 8), seq_lens=(32, "real"), threads=(1, 2)), POINTS)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    assert any("Sweep" in s.value for s in at.subheader)
    sweep_tables = [d.value for d in at.dataframe if {"Threads", "Padding waste"} <= set(d.value.columns)]
    assert len(sweep_tables) == 1 and len(sweep_tables[0]) == 16
    charts = at.get("plotly_chart")
    assert len(charts) >= 2


def test_a_sweep_launched_from_the_results_page_is_followed_and_drawn_from_the_store(store, tmp_path, monkeypatch):
    from profiling.jobs import launcher

    run_id = build_fake_run(store)
    for idx in (0, 1):  # model files on disk for two variants (the launcher checks artifact.json)
        folder = tmp_path / f"art{idx}"
        folder.mkdir()
        (folder / "artifact.json").write_text("{}")
        store.upsert_variant(run_id, idx, artifact=str(folder))
    started: list = []

    class NoProcess:  # launcher.spawn without a process (this one's pid keeps the job alive)
        pid = os.getpid()

    monkeypatch.setattr(launcher, "spawn", lambda store_, args, name: started.append(args) or NoProcess())
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    at.text_input(key=f"sweep_batches_{run_id}").set_value("1,8")
    at.text_input(key=f"sweep_seqs_{run_id}").set_value("32,real")
    at.text_input(key=f"sweep_threads_{run_id}").set_value("1,2")
    next(b for b in at.button if b.label == "Launch the sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = store.list_jobs("sweep", run_id)
    assert started == [["execute-job", job["id"]]] and job["status"] == "queued"
    assert job["request"]["variants"] == [0, 1] and job["request"]["spec"]["seq_lens"] == [32, "real"]
    assert any("waiting to start" in str(p.proto.text) for p in at.get("progress"))

    store.finish_job(job["id"], {"spec": job["request"]["spec"], "env": {}, "points": POINTS})  # the job's result
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception and not at.get("progress")
    sweep_tables = [d.value for d in at.dataframe if {"Threads", "Padding waste"} <= set(d.value.columns)]
    assert len(sweep_tables) == 1 and len(sweep_tables[0]) == 16


def test_results_page_shows_the_runs_workloads(store):
    run_id = build_fake_run(store)
    v1 = next(v for v in store.variants(run_id) if v["idx"] == 1)
    figures = [{"label": "dynamic b8", "ms_per_batch": 12.5, "texts_per_s": 640.0, "padding_waste": 0.4,
                "mean_batch_width": 30.0, "n_batches": 8},
               {"label": "bucketed b8 w8", "ms_per_batch": 9.0, "texts_per_s": 890.0, "padding_waste": 0.05,
                "mean_batch_width": 22.0, "n_batches": 8}]
    store.upsert_variant(run_id, 1, metrics={**v1["metrics"], "workloads": figures})
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "Workload" in d.value.columns)
    assert table["Workload"].tolist() == ["dynamic b8", "bucketed b8 w8"]
    assert table["Variant"].tolist() == [v1["name"]] * 2 and table["Padding waste"].tolist() == [0.4, 0.05]


def test_run_page_sends_the_picked_workloads_with_the_run(open_page, queued_run, monkeypatch):
    from profiling.jobs import runner
    launched: list[dict] = []

    def fake_launch(request, store_path=None):
        launched.append(request)
        return queued_run(request)

    monkeypatch.setattr(runner, "launch", fake_launch)
    at = open_page()
    at.multiselect(key="set_workloads").set_value(["bucketed", "fixed:32"]).run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert launched[0]["workloads"] == ["bucketed:8", "fixed:8x32"]  # at the run's batch size (default 8)
    stored = runner.normalize_request(launched[0])["workloads"]
    assert stored == [{"kind": "bucketed", "batch_size": 8, "seq_len": None, "window": 8},
                      {"kind": "fixed", "batch_size": 8, "seq_len": 32, "window": 8}]
