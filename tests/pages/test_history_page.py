"""AppTests of the History page: listing, opening, comparing and deleting stored runs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

HISTORY = "pages/history.py"
REQUEST = {"model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"}, "variants": [], "settings": {}}


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def values(array) -> list:
    """A plotly JSON array: a plain list or a typed array ({"dtype", "bdata"} in base64)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def finished_run(store, queued_run, accuracy: float, latency: float, model: str = "default") -> str:
    """A done run with an original and one pruned variant, with figures, a timeline and predictions."""
    run_id = queued_run(
        {
            **REQUEST,
            "model": model,
            "variants": [{"name": "Heads pruned 50 %", "chain": [{"technique": "prune-heads", "fraction": 0.5}]}],
        }
    )
    for idx, (acc, lat) in enumerate([(accuracy, latency), (accuracy - 0.05, latency / 2)]):
        store.upsert_variant(
            run_id,
            idx,
            status="done",
            progress=1.0,
            metrics={
                "accuracy": acc,
                "macro_f1": acc - 0.01,
                "latency_b1_median_ms": lat,
                "peak_rss_mib": 400.0 - 50 * idx,
                "disk_mib": 90.0 / (idx + 1),
                "load_time_s": 0.5,
                "throughput_per_s": 100.0,
                "batch_size": 8,
            },
        )
        store.append_timeline(run_id, idx, [(0.0, 40.0), (1.0, 300.0)], [("load", 0.2)])
        store.set_predictions(run_id, idx, [0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    store.set_run_status(run_id, "done")
    return run_id


def test_history_with_no_runs_points_to_the_run_page(open_page):
    at = open_page(HISTORY)
    assert at.title[0].value == "History"
    assert any("No runs yet" in i for i in texts(at.info))


def test_every_run_is_listed_with_status_and_reason(open_page, store, queued_run):
    done = finished_run(store, queued_run, 0.86, 12.0)
    failed = queued_run({**REQUEST, "model": "hub:acme/missing"})
    store.fail_run(failed, "Hugging Face Hub unreachable: cannot download 'acme/missing'")
    running = queued_run(REQUEST)
    store.set_run_status(running, "running")
    store.set_run_pid(running, __import__("os").getpid())  # a live process: not reaped
    at = open_page(HISTORY)
    table = at.dataframe[0].value
    assert list(table["Run"]) == [running, failed, done]  # newest first
    assert table.set_index("Run").loc[failed, "Reason"].startswith("Hugging Face Hub unreachable")
    assert "failed" in table.set_index("Run").loc[failed, "Status"]
    assert "running" in table.set_index("Run").loc[running, "Status"]
    assert table.set_index("Run").loc[done, "Techniques"] == "Heads pruned 50 %"
    assert table.set_index("Run").loc[done, "Open"] == f"results?run={done}"
    assert table.set_index("Run").loc[done, "Model"] == "default"
    assert table.set_index("Run").loc[done, "Variants"] == "2/2"
    links = {(p.proto.page, p.proto.query_string) for p in at.get("page_link")}
    assert ("results", f"run={running}") in links  # "open" defaults to the newest run


def test_deleting_a_run_needs_confirmation_and_removes_only_that_run(open_page, store, queued_run):
    keep = finished_run(store, queued_run, 0.8, 10.0)
    gone = finished_run(store, queued_run, 0.7, 20.0)
    keep_before = (store.variants(keep), store.timeline(keep, 1), store.predictions(keep, 1))
    at = open_page(HISTORY)
    at.selectbox(key="delete_run").set_value(gone).run()
    assert at.button(key="delete_button").disabled  # not without the confirmation tick
    at.checkbox(key=f"delete_confirm_{gone}").check().run()
    at.button(key="delete_button").click().run()
    assert not at.exception
    assert store.get_run(gone) is None and store.variants(gone) == [] and store.timeline(gone, 0)["t"] == []
    assert store.predictions(gone, 0) is None
    assert [r["id"] for r in store.list_runs()] == [keep]
    assert (store.variants(keep), store.timeline(keep, 1), store.predictions(keep, 1)) == keep_before
    assert any(gone in s and "deleted" in s for s in texts(at.success))
    assert list(at.dataframe[0].value["Run"]) == [keep]


def test_a_running_run_cannot_be_deleted(open_page, store, queued_run):
    running = queued_run(REQUEST)
    store.set_run_status(running, "running")
    store.set_run_pid(running, __import__("os").getpid())
    at = open_page(HISTORY)
    at.selectbox(key="delete_run").set_value(running).run()
    assert any("still in progress" in i for i in texts(at.info))
    assert not [b for b in at.button if b.key == "delete_button"]
    assert store.get_run(running) is not None


def test_comparing_two_runs_shows_both_tables_and_one_chart(open_page, store, queued_run):
    a = finished_run(store, queued_run, 0.86, 12.0, model="default")
    b = finished_run(store, queued_run, 0.60, 40.0, model="preset:roberta-base")
    at = open_page(HISTORY)
    assert len(at.get("plotly_chart")) == 0
    at.multiselect(key="compare_runs").set_value([a, b]).run()
    assert not at.exception
    tables = [d.value for d in at.dataframe[1:]]
    assert len(tables) == 2 and all(len(t) == 2 for t in tables)
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    fig = json.loads(charts[0].proto.spec)
    assert len(fig["data"]) == 2  # one trace per run
    assert sorted(round(float(y), 2) for trace in fig["data"] for y in values(trace["y"])) == [0.55, 0.6, 0.81, 0.86]


@pytest.mark.parametrize("status", ["done", "failed"])
def test_open_link_targets_the_results_page_with_the_run_id(open_page, store, queued_run, status):
    run_id = queued_run(REQUEST)
    if status == "done":
        store.set_run_status(run_id, "done")
    else:
        store.fail_run(run_id, "boom")
    at = open_page(HISTORY)
    at.selectbox(key="open_run").set_value(run_id).run()
    assert ("results", f"run={run_id}") in {(p.proto.page, p.proto.query_string) for p in at.get("page_link")}


def _jobs_table(at):
    return next(d.value for d in at.dataframe if "Kind" in d.value.columns)


def test_jobs_are_listed_next_to_the_runs_with_links_to_their_results(open_page, store, queued_run):
    run_id = finished_run(store, queued_run, 0.8, 10.0)
    sweep = store.create_job("sweep", {"run_id": run_id, "spec": {"batch_sizes": [1, 8], "seq_lens": [32],
                                                                  "threads": [2]}}, run_id=run_id)
    store.finish_job(sweep, {"points": []})
    failed = store.create_job("sensitivity", {"technique": "heads", "model": "default:tweets"})
    store.fail_job(failed, "failed during loading the dataset and the model: no such model")
    running = store.create_job("sensitivity", {"technique": "int8", "model": "default:movie-reviews"})
    store.set_job_pid(running, __import__("os").getpid())  # a live process: not reaped
    store.start_job(running)
    store.set_job_progress(running, 0.25, "layer 9/36")
    at = open_page(HISTORY)
    table = _jobs_table(at).set_index("Job")
    assert list(table.index) == [running, failed, sweep]  # newest first
    assert table.loc[sweep, "Kind"] == "Sweep" and table.loc[sweep, "Status"] == "done"
    assert table.loc[sweep, "Open"] == f"results?run={run_id}"
    assert table.loc[sweep, "Of"] == f"run {run_id} · 1,8 x 32 x 2"
    assert table.loc[failed, "Reason"].endswith("no such model") and table.loc[failed, "Status"] == "failed"
    assert table.loc[running, "Status"] == "running (layer 9/36)"
    assert table.loc[running, "Open"] == f"sensitivity?job={running}"
    assert table.loc[running, "Of"] == "int8 · default:movie-reviews"


def test_a_job_is_deleted_after_confirmation_and_a_queued_one_stopped(open_page, store):
    done = store.create_job("sensitivity", {"technique": "int8"})
    store.finish_job(done, {"technique": "int8", "rows": [], "baseline_accuracy": 0.5})
    queued = store.create_job("sensitivity", {"technique": "heads"})
    at = open_page(HISTORY)  # no runs: the jobs are listed all the same
    assert list(_jobs_table(at)["Job"]) == [queued, done]
    at.selectbox(key="manage_job").set_value(done).run()
    assert at.button(key="delete_job_button").disabled
    at.checkbox(key=f"delete_job_confirm_{done}").check().run()
    at.button(key="delete_job_button").click().run()
    assert not at.exception
    assert store.get_job(done) is None and any(done in s and "deleted" in s for s in texts(at.success))
    at.selectbox(key="manage_job").set_value(queued).run()
    assert not [b for b in at.button if b.key == "delete_job_button"]  # not while it is queued
    at.button(key=f"history_stop_{queued}").click().run()
    assert store.get_job(queued)["status"] == "failed"
    assert store.get_job(queued)["error"] == "stopped by the user before it started"


def test_read_only_lists_jobs_but_offers_no_stop_or_delete(open_page, store, monkeypatch):
    done = store.create_job("sensitivity", {"technique": "int8"})
    store.finish_job(done, {"technique": "int8", "rows": [], "baseline_accuracy": 0.5})
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    at = open_page(HISTORY)
    table = _jobs_table(at)
    assert list(table["Job"]) == [done] and table["Open"].isna().all()  # the Sensitivity page is not served
    assert not [s for s in at.selectbox if s.key == "manage_job"]
