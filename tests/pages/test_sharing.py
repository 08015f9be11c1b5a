"""AppTest: read-only mode and share links hide the controls; recommendations, cost, live A/B, demo page."""

from __future__ import annotations

import pytest

from profiling.store.runs import ReadOnlyError
from tests.helpers.fake_runs import METRICS, build_fake_run


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption] + [m.value for m in at.info]
    parts += [m.value for m in at.success] + [m.value for m in at.warning] + [m.value for m in at.error]
    return "\n".join(str(p) for p in parts)


def _frame(at, column: str):
    """The first table shown with that column."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def test_read_only_mode_hides_run_and_delete_and_refuses_mutations(store, open_page, monkeypatch):
    run_id = build_fake_run(store)
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    at = open_page()  # the default page is Results now: the Run page is not registered
    assert not [b for b in at.button if b.key == "launch"]
    assert at.title[0].value == "Results"
    at = open_page("pages/history.py")
    assert not [s for s in at.selectbox if s.key == "delete_run"]
    assert "Import a run bundle" not in _texts(at)
    with pytest.raises(ReadOnlyError, match="read-only"):
        store.delete_run(run_id)
    with pytest.raises(ReadOnlyError, match="read-only"):
        store.create_run({"model": "default", "variants": []})
    assert store.get_run(run_id) is not None and len(store.list_runs()) == 1


def test_writable_history_has_delete_and_import(store, open_page):
    build_fake_run(store)
    at = open_page("pages/history.py")
    assert [s for s in at.selectbox if s.key == "delete_run"]
    assert "Import a run bundle" in _texts(at)


def test_share_link_shows_one_run_without_picker_or_controls(store, open_page):
    run_id = build_fake_run(store)
    build_fake_run(store)  # another run: a share view must not offer it
    at = open_page("pages/results.py", query={"run": run_id, "view": "shared"})
    assert not [s for s in at.selectbox if s.key == "results_run"], "no run picker on a share link"
    assert "shared, read-only view" in _texts(at)
    assert not [b for b in at.button if b.key in ("launch", "delete_button")]
    assert _frame(at, "Size ratio") is not None
    # a link to a run that is not there says so
    at = open_page("pages/results.py", query={"run": "nope", "view": "shared"})
    assert "not in this dashboard's store" in _texts(at)


def test_recommendation_marks_variants_and_names_the_limit(store, open_page):
    run_id = build_fake_run(store)
    at = open_page("pages/results.py", query={"run": run_id})
    at.number_input(key=f"rec_max_disk_mib_{run_id}").set_value(50.0).run()
    at.number_input(key=f"rec_max_accuracy_drop_pts_{run_id}").set_value(5.0).run()
    table = _frame(at, "Ruled out by")
    rows = {r["Variant"]: r for _, r in table.iterrows()}
    # original and onnx are 87 / 87.5 MiB on disk: ruled out by size; onnx-int8 (22 MiB) drops 8.3 points
    assert rows["original"]["Ruled out by"] == "size on disk"
    assert rows["onnx-int8"]["Ruled out by"] == "accuracy"
    ruled = next(m.value for m in at.markdown if m.value.startswith("**Ruled out:**"))  # the figures, in full
    assert "- **original**: size on disk 87.0 MiB > limit 50.0 MiB" in ruled
    assert "- **onnx-int8**: accuracy drop 8.3 pts > limit 5.0 pts" in ruled
    assert "No finished variant meets all the limits" in _texts(at)
    at.number_input(key=f"rec_max_accuracy_drop_pts_{run_id}").set_value(10.0).run()
    rows = {r["Variant"]: r for _, r in _frame(at, "Ruled out by").iterrows()}
    assert rows["onnx-int8"][""].endswith("recommended")
    assert "Recommended: onnx-int8" in _texts(at)


def test_cost_table_from_measured_figures(store, open_page):
    run_id = build_fake_run(store)
    at = open_page("pages/results.py", query={"run": run_id})
    at.number_input(key=f"cost_load_{run_id}").set_value(500.0).run()
    at.number_input(key=f"cost_core_{run_id}").set_value(0.05).run()
    at.number_input(key=f"cost_gib_{run_id}").set_value(0.01).run()
    rows = {r["Variant"]: r for _, r in _frame(at, "Cost / million").iterrows()}
    # original: 88/s x 0.7 = 61.6/s per replica -> ceil(500 / 61.6) = 9 replicas x 2 threads = 18 cores
    assert rows["original"]["Replicas"] == 9 and rows["original"]["Cores"] == 18
    # 9 x 610 MiB x 1.25 / 1024 = 6.7017 GiB; 18 x 0.05 + 6.7017 x 0.01 = 0.96702 per hour;
    # 500/s = 1.8 million per hour -> 0.96702 / 1.8 = 0.53723 per million
    assert rows["original"]["RAM (GiB)"] == "6.7"
    assert rows["original"]["Cost / million"] == "0.5372"
    assert METRICS[2]["throughput_per_s"] == 266.0  # onnx-int8: 266 x 0.7 = 186.2 -> 3 replicas
    assert rows["onnx-int8"]["Replicas"] == 3


def test_live_ab_box_says_an_imported_run_has_no_model_files(store, open_page):
    from profiling.store.bundle import export_bytes, import_bundle

    run_id = import_bundle(store, export_bytes(store, build_fake_run(store)), on_collision="new", duplicate="copy")
    at = open_page("pages/results.py", query={"run": run_id})
    assert "imported from a bundle" in _texts(at)
    assert "**a copy** of run" in _texts(at)  # the header says it is a second copy of a stored run
    assert "Share and export" in [h.value for h in at.subheader]


def _scenario_run(store, title: str) -> str:
    """A stored, finished run of the demo scenario's exact request with fake figures (no model is run)."""
    from dashboard.demo import scenario_request
    from profiling.jobs import runner
    request = runner.normalize_request(scenario_request(title))
    run_id = store.create_run(request)
    for idx in range(len(request["variants"])):
        m = dict(METRICS[min(idx, 2)])
        m["accuracy"] = round(0.8 - 0.002 * idx, 3)
        store.upsert_variant(run_id, idx, status="done", metrics=m, progress=1.0)
    store.set_run_status(run_id, "done")
    return run_id


def test_demo_page_shows_the_stored_run_of_a_scenario(store, open_page):
    quick = "Quick tour \u00b7 default classifier"
    run_id = _scenario_run(store, quick)
    build_fake_run(store)  # a newer run with another request must not be taken for it
    at = open_page("pages/demo.py")
    assert at.radio(key="demo_scenario").value == quick  # it opens on the scenario this machine has run
    at.radio(key="demo_scenario").set_value("Reference sequence \u00b7 default classifier").run()
    assert "has not been run on this machine yet" in _texts(at)  # no run here and none shipped for it
    assert next(b for b in at.button if b.key == "demo_launch").label == "Run it live"
    at.radio(key="demo_scenario").set_value(quick).run()
    assert not at.exception
    text = _texts(at)
    assert f"Stored run {run_id}" in text and "measured on this machine" in text
    assert "ships with the app" not in text  # the run made here replaces the shipped one
    assert "faster** than the original" in text
    assert next(b for b in at.button if b.key == "demo_launch").label == "Run it again live"


def test_demo_page_shows_the_shipped_run_on_an_empty_store(store, open_page):
    from profiling.jobs.demo_runs import shipped

    ship = shipped("quick")
    assert ship is not None, "profiling/demo_runs/quick.zip is shipped"
    at = open_page("pages/demo.py")
    assert not at.exception
    assert at.radio(key="demo_scenario").value.startswith("Quick tour")  # the scenario there is something to show
    text = _texts(at)
    assert "not a run made here" in text and ship.label in text and ship.run["id"] in text
    assert ship.label.startswith("AMD EPYC") and "measured 20" in ship.label  # machine, flags and date, as recorded
    assert "faster** than the original" in text
    assert next(b for b in at.button if b.key == "demo_launch").label == "Run it live on this machine"
    assert store.list_runs() == []  # shown from the bundle: nothing was written to the store


def test_demo_page_prefers_a_run_made_here_and_labels_an_imported_one(store, open_page):
    from profiling.jobs.demo_runs import bundle_path
    from profiling.store.bundle import import_bundle

    imported = import_bundle(store, bundle_path("quick"))
    at = open_page("pages/demo.py")
    text = _texts(at)
    assert f"Stored run {imported}" in text and "imported from a bundle, measured on AMD EPYC" in text
    assert "measured on this machine" not in text
    here = _scenario_run(store, "Quick tour \u00b7 default classifier")  # then a run made on this machine
    at = open_page("pages/demo.py")
    assert f"Stored run {here}" in _texts(at) and "measured on this machine" in _texts(at)


def test_demo_page_is_view_only_when_read_only(store, open_page, monkeypatch):
    _scenario_run(store, "Quick tour \u00b7 default classifier")
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    at = open_page("pages/demo.py")
    assert not [b for b in at.button if b.key == "demo_launch"]


def test_live_ab_box_runs_the_original_and_a_variant(store, open_page, tmp_path):
    """Two tiny real models as the run's artifacts: the box shows both predictions, probabilities and latency."""
    from tests.helpers.tiny_architectures import make_artifact, tiny_model

    run_id = build_fake_run(store)
    for idx, seed in ((0, 0), (2, 1)):
        art = make_artifact(tmp_path / f"art{idx}", tiny_model("bert", seed=seed))
        store.upsert_variant(run_id, idx, artifact=str(art.path))
    at = open_page("pages/results.py", query={"run": run_id})
    at.selectbox(key=f"ab_variant_{run_id}").set_value(2).run()
    at.text_area(key=f"ab_text_{run_id}").input("a wonderful, moving film").run()
    at.button(key=f"ab_go_{run_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predicted"] in ("negative", "positive")
    assert metrics["Latency (median of 5, batch 1)"].endswith(" ms")
    probs = [df.value for df in at.dataframe if "Probability" in df.value.columns]
    assert len(probs) == 2 and all(abs(p["Probability"].sum() - 1.0) < 1e-5 for p in probs)
    assert not [w.value for w in at.warning if "model files" in w.value]
    assert any(("Same prediction" in m.value or "Different predictions" in m.value) for m in [*at.success, *at.warning])


def test_demo_rerun_launches_the_scenario_and_opens_the_run_page(store, open_page, monkeypatch):
    """The launch itself is replaced by storing the queued run (no background process in a page test)."""
    from profiling.jobs import runner
    launched: list[dict] = []

    def fake_launch(request: dict, store_path=None) -> str:
        launched.append(request)
        return store.create_run(runner.normalize_request(request))

    monkeypatch.setattr(runner, "launch", fake_launch)
    at = open_page("pages/demo.py")
    at.radio(key="demo_scenario").set_value("Quick tour \u00b7 default classifier").run()
    at.button(key="demo_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(launched) == 1 and launched[0]["model"] == "default"
    assert next(v["name"] for v in launched[0]["variants"]) == "Original"
    run_id = store.list_runs()[0]["id"]
    assert at.session_state["run_id"] == run_id
    assert f"Run {run_id}" in [h.value for h in at.subheader]  # the Run page follows it
