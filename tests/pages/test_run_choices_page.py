"""AppTests: the Run page's choices survive another page and a reload (?setup=), and "Set up a new run" starts from
the finished run's request."""

from __future__ import annotations

import json

from tests.pages.conftest import _open_page


def _choose(at):
    at.checkbox(key="tick_prune-heads").check().run()
    at.slider(key="opt_prune-heads_fraction").set_value(0.25).run()
    at.number_input(key="set_batch_size").set_value(4).run()
    at.number_input(key="set_eval_size").set_value(40).run()
    at.radio(key="dataset_choice").set_value("tweets").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _assert_chosen(at):
    assert at.checkbox(key="tick_prune-heads").value is True
    assert at.slider(key="opt_prune-heads_fraction").value == 0.25
    assert at.number_input(key="set_batch_size").value == 4
    assert at.number_input(key="set_eval_size").value == 40
    assert at.radio(key="dataset_choice").value == "tweets"
    assert at.checkbox(key="tick_onnx").value is False


def test_choices_survive_another_page_in_the_same_session(open_page, app_env):
    at = _choose(open_page())
    at.switch_page("pages/history.py").run()
    assert not at.exception and at.title[0].value != "Compression Explorer"
    at.switch_page("pages/run.py").run()
    assert not at.exception, [e.value for e in at.exception]
    _assert_chosen(at)


def test_choices_survive_a_reload_through_the_url(open_page, app_env, fake_launch):
    at = _choose(open_page())
    token = at.query_params.get("setup")
    assert token and token.startswith("v1.")
    fresh = _open_page(query={"setup": token})  # a new session: only the URL carries the choices
    _assert_chosen(fresh)
    assert not [i for i in fresh.info if "ignored" in i.value or "left out" in i.value]
    fresh.button(key="launch").click().run()  # and they are what gets launched
    request = fake_launch[-1]
    assert request["settings"]["batch_size"] == 4 and request["settings"]["eval_size"] == 40
    assert request["dataset"] == {"kind": "bundled", "name": "tweets"}
    assert [v["chain"][0]["fraction"] for v in request["variants"][1:]] == [0.25]


def test_a_bad_or_stale_setup_link_is_ignored_with_a_notice(open_page, app_env):
    at = _open_page(query={"setup": "v1.this-is-not-a-setup"})
    notes = [i.value for i in at.info if "set-up in this link was ignored" in i.value]
    assert notes and "damaged" in notes[0]
    assert at.number_input(key="set_batch_size").value == 8  # the defaults
    from dashboard.run_choices import encode

    token = encode({"tick_prune-heads": True, "tick_teleport": True, "set_batch_size": 0, "set_eval_size": 40})
    at = _open_page(query={"setup": token})
    notes = [i.value for i in at.info if "no longer apply" in i.value]
    assert notes and "teleport" in notes[0] and "batch_size" in notes[0]
    assert at.checkbox(key="tick_prune-heads").value is True and at.number_input(key="set_eval_size").value == 40
    assert at.number_input(key="set_batch_size").value == 8


def test_set_up_a_new_run_starts_from_the_finished_runs_request(open_page, app_env, store, queued_run):
    run_id = queued_run({"model": "preset:distilroberta-base", "dataset": {"kind": "bundled", "name": "tweets"},
                         "variants": [{"name": "heads", "chain": [{"technique": "prune-heads", "fraction": 0.3}]},
                                      {"name": "chain", "chain": [{"technique": "onnx"}, {"technique": "onnx-int8"},
                                                                  {"technique": "onnx-fp16"}]}],
                         "settings": {"batch_size": 2, "eval_size": 30, "threads": 1}})
    store.set_run_status(run_id, "done")
    at = _open_page(query={"run": run_id})
    at.button(key="new_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="model_source").value == "Architecture preset"
    assert at.selectbox(key="model_preset").value == "preset:distilroberta-base"
    assert at.radio(key="dataset_choice").value == "tweets"
    assert at.number_input(key="set_batch_size").value == 2 and at.number_input(key="set_eval_size").value == 30
    assert at.checkbox(key="tick_prune-heads").value is True
    assert abs(at.slider(key="opt_prune-heads_fraction").value - 0.3) < 1e-9
    plan = next(m.value for m in at.markdown if "to measure:**" in m.value)
    assert "3 variants" in plan, plan  # the original, the pruned one and the chain (kept as a preset variant)
    assert json.loads(json.dumps(at.session_state["extra_variants"]))[0]["chain"][0]["technique"] == "onnx"


def test_results_offers_a_new_run_from_the_shown_one(open_page, app_env, store):
    from tests.helpers.fake_runs import build_fake_run

    run_id = build_fake_run(store)
    at = open_page("pages/results.py", {"run": run_id})
    at.button(key=f"new_run_from_{run_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Compression Explorer"
    assert at.checkbox(key="tick_onnx").value is True and at.checkbox(key="tick_onnx-int8").value is True
    assert at.number_input(key="set_batch_size").value == 8 and at.number_input(key="set_eval_size").value == 12
    at = open_page("pages/results.py", {"run": run_id, "view": "shared"})
    assert not [b for b in at.button if (b.key or "").startswith("new_run_from_")]
