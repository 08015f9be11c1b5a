"""AppTest of the Results page against a prepared run store (fake finished, running and failed runs)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import REPO
from tests.helpers.fake_runs import INT8_CHANGED, METRICS, TEXTS, build_fake_run

PAGE = REPO / "pages" / "results.py"


def _run(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def _frames(at: AppTest) -> list:
    return [df.value for df in at.dataframe]


def _summary(at: AppTest):
    return next(f for f in _frames(at) if "Peak RAM (MiB)" in f.columns)


def _changed(at: AppTest):
    return next(f for f in _frames(at) if "text" in f.columns)


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_empty_store_gives_a_hint(store):
    at = _run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.dataframe


def test_summary_table_has_the_stored_figures(store):
    run_id = build_fake_run(store)
    at = _run({"run": run_id})
    _no_errors(at)
    table = _summary(at)
    assert list(table["Variant"]) == ["original", "onnx", "onnx-int8"]
    assert list(table["Peak RAM (MiB)"]) == [METRICS[i]["peak_rss_mib"] for i in range(3)]
    assert list(table["Disk (MiB)"]) == [METRICS[i]["disk_mib"] for i in range(3)]
    assert list(table["Latency b8 median (ms)"]) == [90.0, 60.0, 30.0]  # the batch size reaches the header
    assert table["Accuracy"].round(4).tolist() == [round(10 / 12, 4), round(10 / 12, 4), 0.75]
    assert table["Agreement"].tolist() == [1.0, 1.0, 0.75]
    assert table["Size ratio"].round(4).tolist() == [1.0, round(87.5 / 87, 4), round(22 / 87, 4)]
    assert table["Latency ratio"].tolist() == [1.0, 0.5, 0.25]
    labels = [b.label for b in at.get("download_button")]
    charts = [b for b in labels if b in ("PNG", "SVG")]  # each chart for slides: the frontier, size, memory by phase
    assert charts == ["PNG", "SVG"] * 3
    assert [b for b in labels if b not in ("PNG", "SVG")] == [  # the CSV, then the share/export section's two
        "Download the table as CSV", "Download the HTML report", "Download the run bundle"]


def test_latest_run_is_shown_without_a_query(store):
    build_fake_run(store)
    newest = build_fake_run(store)
    at = _run()
    _no_errors(at)
    assert at.selectbox(key="results_run").value == newest


def test_changed_examples_lists_exactly_the_changed_rows(store):
    run_id = build_fake_run(store)
    at = _run({"run": run_id})
    _no_errors(at)
    # The comparison defaults to the variant that changed the most predictions (onnx-int8).
    cmp = next(s for s in at.selectbox if s.label == "Variant to compare with the original")
    assert cmp.value == 2
    changed = _changed(at)
    assert sorted(changed["example"]) == INT8_CHANGED
    assert list(changed.sort_values("example")["text"]) == [TEXTS[i] for i in INT8_CHANGED]
    row = changed.set_index("example").loc[4]
    assert (row["true"], row["original"], row["variant"], row["effect"]) == (
        "negative",
        "negative",
        "positive",
        "broken",
    )
    assert row["original_prob"] == pytest.approx(0.9) and row["variant_prob"] == pytest.approx(0.7)
    # onnx changed nothing: an empty table and a clear sentence.
    at = cmp.set_value(1).run()
    _no_errors(at)
    assert _changed(at).empty
    assert any("exactly the same classes" in s.value for s in at.success)


def test_class_pair_selectors_filter_the_changed_examples(store):
    run_id = build_fake_run(store)
    at = _run({"run": run_id})
    true_sel = next(s for s in at.selectbox if s.label == "True label")
    at = true_sel.set_value("negative").run()
    _no_errors(at)
    assert sorted(_changed(at)["example"]) == [2, 4]
    pred_sel = next(s for s in at.selectbox if s.label.startswith("Predicted as"))
    at = pred_sel.set_value("positive").run()  # true negative, predicted positive by either model: both rows
    assert sorted(_changed(at)["example"]) == [2, 4]
    at = next(s for s in at.selectbox if s.label == "True label").set_value("positive").run()
    assert sorted(_changed(at)["example"]) == [7]
    at = next(s for s in at.selectbox if s.label.startswith("Predicted as")).set_value("negative").run()
    assert sorted(_changed(at)["example"]) == [7]
    at = next(b for b in at.button if b.label == "Show all").click().run()
    assert sorted(_changed(at)["example"]) == INT8_CHANGED


def test_bad_run_id_gives_a_clear_message(store):
    build_fake_run(store)
    at = _run({"run": "no-such-run"})
    assert not at.exception
    assert any("no run with id `no-such-run`" in e.value for e in at.error)
    assert not any("Peak RAM (MiB)" in f.columns for f in _frames(at))  # nothing else shown until a run is picked


def test_failed_run_shows_its_reason_and_failed_variants(store):
    run_id = build_fake_run(store, status="failed", with_failed=True)
    at = _run({"run": run_id})
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "This run failed: out of memory" in errors
    assert "torch.jit.trace failed: unsupported op" in errors
    assert any("deprecated" in w.value for w in at.warning)
    assert list(_summary(at)["Status"]) == ["done", "done", "done", "failed"]


def test_running_run_shows_what_it_has_with_a_note(store):
    run_id = build_fake_run(store, status="running")
    store.upsert_variant(run_id, 2, status="profiling", metrics={})
    at = _run({"run": run_id})
    assert not at.exception
    assert any("still running" in i.value for i in at.info)
    assert list(_summary(at)["Status"]) == ["done", "done", "profiling"]


def test_random_weights_model_gets_a_warning(store):
    run_id = build_fake_run(store)
    req = store.get_run(run_id)["request"]
    other = store.create_run({**req, "model": "preset:roberta-base"})
    at = _run({"run": other})
    assert not at.exception
    assert any("random weights" in w.value for w in at.warning)


def test_an_unexpected_error_is_a_friendly_message_not_a_traceback(store, monkeypatch):
    from profiling.report import figures as plots
    def broken(*args, **kwargs):
        raise RuntimeError("plotting exploded")

    monkeypatch.setattr(plots, "tradeoff_scatter", broken)
    run_id = build_fake_run(store)
    at = _run({"run": run_id})
    assert not at.exception
    assert any("could not show this run: RuntimeError: plotting exploded." in e.value for e in at.error)
    assert any(x.label == "Details" for x in at.expander)  # where it was raised, folded away
    assert any(m.value.startswith("#### **Recommended") for m in at.markdown)  # drawn before the failure: kept


def test_picking_a_run_updates_the_url(store):
    older = build_fake_run(store, status="failed")
    newest = build_fake_run(store)
    at = _run()
    assert at.selectbox(key="results_run").value == newest
    at = at.selectbox(key="results_run").set_value(older).run()
    assert not at.exception
    assert at.query_params["run"] == older
    assert any("This run failed: out of memory" in e.value for e in at.error)
