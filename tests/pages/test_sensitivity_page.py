"""AppTests of the Sensitivity page: empty state, a stored map drawn with excludes, a map launched from the form as a
background job (the page returns at once, shows its progress, draws the stored result)."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.tiny_models import build_tiny_bert
from tests.helpers.toy_data import toy_texts

PAGE = "pages/sensitivity.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from compression import hf_io

    path = build_tiny_bert(tmp_path_factory.mktemp("sens-app") / "bert")
    return hf_io.load_model(path), hf_io.load_tokenizer(path)


def _fake_run(tiny, calls):
    """profiling.jobs.sensitivity.run on the tiny model and toy texts (the real default classifier is too slow here)."""
    from profiling.jobs import sensitivity as sens

    def run(model_spec, dataset, technique, samples, seed, rank_fraction, progress=None, save=True):
        calls.append((model_spec, dataset, technique, samples, seed, save))
        texts, labels = toy_texts(samples, seed)
        result = sens.compute(*tiny, texts, labels, technique, rank_fraction, progress=progress)
        result.update(model=model_spec, dataset=dataset["name"], split="train", samples=samples, seed=seed, seconds=0.1)
        return result

    return run


class _NoProcess:
    """What launcher.spawn returns in these tests: no process is started (this one's pid keeps the job alive)."""

    def __init__(self, started: list):
        self.started = started
        self.pid = os.getpid()

    def __call__(self, store, args, name):
        self.started.append(args)
        return self


def test_empty_state(open_page):
    at = open_page(PAGE)
    assert any("No map computed yet" in str(i.value) for i in at.info)
    assert at.title[0].value == "Sensitivity map"


def _stored_map(tiny) -> dict:
    """An int8 sensitivity map of the tiny model on 8 toy texts, saved where the page reads it."""
    from profiling.jobs import sensitivity as sens

    texts, labels = toy_texts(8)
    result = sens.compute(*tiny, texts, labels, "int8")
    result.update(model="tiny", dataset="toy", split="train", samples=8, seed=0, seconds=0.2)
    sens.save_result(result)
    return result


def test_stored_map_is_drawn_with_an_exclude_list(open_page, app_env, tiny):
    from profiling.jobs import sensitivity as sens
    result = _stored_map(tiny)
    at = open_page(PAGE)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["data"][0]["type"] == "heatmap"
    assert chart["data"][0]["y"] == ["layer 0", "layer 1"] and len(chart["data"][0]["x"]) == 6
    top3 = sens.most_sensitive(result, 3)
    assert at.code[0].value == "onnx>onnx-int8:exclude_layers=" + "+".join(top3)
    assert len(at.dataframe[0].value) == 12
    at.number_input(key="sensitivity-k").set_value(1).run()
    assert at.code[0].value.endswith("=" + sens.most_sensitive(result, 1)[0])
    at.radio[0].set_value("max_logit_change").run()
    assert not at.exception


def test_use_on_the_run_page_ticks_the_technique_with_the_exclude_list(open_page, app_env, tiny):
    """'Use in onnx-int8' opens the Run page with ONNX int8 ticked and the sensitive layers excluded."""
    from profiling.jobs import sensitivity as sens
    result = _stored_map(tiny)
    at = open_page(PAGE)
    at.number_input(key="sensitivity-k").set_value(2).run()
    at.button(key="sensitivity-use-onnx-int8").click().run()
    assert not at.exception
    assert at.session_state["tick_onnx-int8"] is True
    assert at.text_input(key="opt_onnx-int8_exclude_layers").value == "+".join(sens.most_sensitive(result, 2))
    assert at.button(key="launch")  # we are on the Run page


def test_launching_a_map_returns_at_once_then_shows_progress_and_draws_the_result(open_page, app_env, store, tiny,
                                                                                 monkeypatch):
    from profiling.jobs import launcher
    from profiling.jobs import sensitivity as sens

    started: list = []
    monkeypatch.setattr(launcher, "spawn", _NoProcess(started))
    calls: list = []
    monkeypatch.setattr(sens, "run", _fake_run(tiny, calls))
    at = open_page(PAGE)
    at.selectbox[1].set_value("heads")
    at.number_input[0].set_value(16)
    next(b for b in at.button if b.label == "Compute the map").click().run()  # the build box may come first
    assert not at.exception, [e.value for e in at.exception]
    (job,) = store.list_jobs("sensitivity")
    assert started == [["execute-job", job["id"]]] and calls == []  # launched, nothing computed in the page
    assert job["status"] == "queued" and at.query_params["job"] == job["id"]
    assert job["request"] == {"model": "default:movie-reviews", "dataset": {"kind": "bundled", "name": "movie-reviews"},
                              "technique": "heads", "samples": 16, "seed": 0, "rank_fraction": 0.25}
    assert any("waiting to start" in str(p.proto.text) for p in at.get("progress"))

    store.set_job_progress(job["id"], 0.5, "head 4/8")  # as the job's process records it
    at = open_page(PAGE, query={"job": job["id"]})  # a reload (a new session) follows the same job
    (bar,) = at.get("progress")
    assert bar.value == 50 and "head 4/8" in bar.proto.text
    assert any(b.label == "Yes, stop it" for b in at.button)

    assert launcher.execute_job(job["id"], store)["status"] == "done"  # what the job's process does
    assert calls == [("default:movie-reviews", {"kind": "bundled", "name": "movie-reviews"}, "heads", 16, 0, False)]
    at = open_page(PAGE, query={"job": job["id"]})
    assert not at.get("progress")
    assert at.selectbox(key="sensitivity-map").value == job["id"]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["data"][0]["x"] == [f"head {h}" for h in range(4)]
    assert any("names heads, not Linear layers" in str(c.value) for c in at.caption)
    assert sens.list_results() == []  # stored in the store, no file


def test_a_failed_map_shows_its_reason(open_page, app_env, store):
    job_id = store.create_job("sensitivity", {"technique": "int8"})
    store.fail_job(job_id, "failed during loading the dataset and the model: no such model")
    at = open_page(PAGE, query={"job": job_id})
    assert any("no such model" in e.value for e in at.error)
