"""Unit tests of the dashboard's plot functions, the Pareto frontier and the Results page's DataFrame builders."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profiling.report import figures as plots
from profiling.report import frames as rd
from tests.helpers.fake_runs import INT8_CHANGED, fake_store

# ---- pareto_front ------------------------------------------------------------------------------------------


def _df(points: dict) -> pd.DataFrame:
    return pd.DataFrame([{"variant": k, "x": x, "y": y} for k, (x, y) in points.items()]).set_index("variant")


def test_pareto_front_drops_dominated_points_and_sorts_by_x():
    df = _df({"a": (10, 0.90), "b": (5, 0.80), "c": (20, 0.85), "d": (2, 0.70), "e": (12, 0.95)})
    # c is beaten by a (faster and better); every other point is the best at its speed.
    assert plots.pareto_front(df, "x", "y") == ["d", "b", "a", "e"]


def test_pareto_front_ties():
    # Same x: only the higher y survives. Same y: only the lower x. Exact duplicates both stay.
    df = _df({"a": (5, 0.8), "b": (5, 0.9), "c": (7, 0.9), "d": (3, 0.5), "e": (3, 0.5)})
    assert plots.pareto_front(df, "x", "y") == ["d", "e", "b"]


def test_pareto_front_ignores_missing_values():
    df = _df({"a": (1, math.nan), "b": (math.nan, 1.0), "c": (4, 0.6), "d": (float("inf"), 2.0)})
    assert plots.pareto_front(df, "x", "y") == ["c"]
    assert plots.pareto_front(df.iloc[:0], "x", "y") == []
    assert plots.pareto_front(df, "x", "missing") == []


def test_pareto_front_single_best_point():
    df = _df({"a": (1, 0.99), "b": (2, 0.9), "c": (3, 0.5)})
    assert plots.pareto_front(df, "x", "y") == ["a"]


# ---- tradeoff scatter -------------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "idx": [0, 1, 2, 3],
            "variant": ["original", "onnx", "onnx-int8", "pruned"],
            "latency_b1_median_ms": [20.0, 10.0, 5.0, 12.0],
            "accuracy": [0.9, 0.9, 0.85, 0.8],
            "peak_rss_mib": [600.0, 300.0, 200.0, 500.0],
            "disk_mib": [87.0, 87.0, 22.0, 60.0],
            "macro_f1": [0.89, 0.89, 0.84, 0.79],
            "batch_size": [8, 8, 8, 8],
            "latency_bN_median_ms": [90.0, 60.0, 30.0, 70.0],
        }
    )


def test_tradeoff_scatter_draws_the_frontier_as_a_step_line():
    fig = plots.tradeoff_scatter(_frame(), "latency_b1_median_ms")
    front = next(t for t in fig.data if t.name == "Pareto frontier")
    assert front.line.shape == "hv"
    assert list(front.x) == [5.0, 10.0] and list(front.y) == [0.85, 0.9]
    points = next(t for t in fig.data if t.name == "variants")
    assert list(points.hovertext) == ["original", "onnx", "onnx-int8", "pruned"]
    assert list(points.text) == ["original", "onnx", "onnx-int8", ""]  # labels: the original and the frontier
    assert list(points.marker.size) == [600.0, 300.0, 200.0, 500.0]  # bubble area = peak RAM
    assert list(points.marker.symbol) == ["star", "circle", "circle", "circle"]  # the original stands out
    assert list(points.marker.line.width) == [1, 2, 2, 1]  # outlined: on the frontier


def test_tradeoff_scatter_hover_shows_every_figure():
    fig = plots.tradeoff_scatter(_frame(), "disk_mib")
    points = next(t for t in fig.data if t.name == "variants")
    for label in ("Disk (MiB)", "Peak RAM (MiB)", "Accuracy", "Macro-F1", "Latency batch 1", "Latency batch 8"):
        assert label in points.hovertemplate
    assert np.asarray(points.customdata).shape == (4, 6)  # the six figures the frame has
    assert fig.layout.xaxis.title.text == "Disk (MiB)"


def test_tradeoff_scatter_log_axis_and_missing_rows():
    df = _frame()
    df.loc[3, "accuracy"] = math.nan  # a failed variant: left out, not plotted at 0
    fig = plots.tradeoff_scatter(df, "latency_b1_median_ms", log_x=True)
    assert fig.layout.xaxis.type == "log"
    points = next(t for t in fig.data if t.name == "variants")
    assert list(points.hovertext) == ["original", "onnx", "onnx-int8"]
    empty = plots.tradeoff_scatter(df.iloc[:0], "latency_b1_median_ms")
    assert "No finished variants" in empty.layout.annotations[0].text


def test_labels_of_a_crowded_band_never_overlap():
    # eleven variants, nine of them crowded in the top band (the case): frontier points labelled where a
    # label fits, no two label boxes overlap, the rest are named on hover only
    xs = np.array([40.0, 20.0, 19.0, 18.5, 18.0, 12.0, 11.5, 11.0, 10.8, 6.0, 5.5])
    ys = np.array([0.850, 0.851, 0.850, 0.849, 0.852, 0.848, 0.850, 0.849, 0.851, 0.80, 0.74])
    names = [f"variant-with-a-long-name-{i}" for i in range(11)]
    front = plots.pareto_front(pd.DataFrame({"x": xs, "y": ys}), "x", "y")
    wanted = [i in front for i in range(11)]
    texts, sides = plots.place_labels(xs, ys, names, wanted)
    assert [t for t in texts if t] and all(not t for t, w in zip(texts, wanted, strict=True) if not w)
    w_px, h_px = plots.PLOT_PX

    def box(i):  # the same geometry place_labels uses, in plot pixels
        span_x, span_y = np.ptp(xs) * 1.4, np.ptp(ys) * 1.4
        cx = (xs[i] - (xs.min() - np.ptp(xs) * 0.2)) / span_x * w_px
        cy = (ys[i] - (ys.min() - np.ptp(ys) * 0.2)) / span_y * h_px
        w = 7.0 * len(names[i])
        return {"top center": (cx - w / 2, cy + 10, cx + w / 2, cy + 26),
                "bottom center": (cx - w / 2, cy - 26, cx + w / 2, cy - 10),
                "middle right": (cx + 10, cy - 8, cx + 10 + w, cy + 8),
                "middle left": (cx - 10 - w, cy - 8, cx - 10, cy + 8)}[sides[i]]

    boxes = [box(i) for i, t in enumerate(texts) if t]
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            p, q = boxes[a], boxes[b]
            assert not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]), (a, b)


# ---- memory timeline --------------------------------------------------------------------------------------


def _timelines() -> dict[str, dict]:
    return {
        "original": {"t": [0.0, 1.0, 2.0], "mib": [50.0, 300.0, 310.0], "phases": [["import", 0.0], ["load", 0.5]]},
        "onnx": {"t": [0.0, 1.0, 2.0, 3.0], "mib": [40.0, 100.0, 200.0, 150.0], "phases": [["load", 1.5]]},
        "int8": {"t": [], "mib": [], "phases": []},
    }


def test_memory_timeline_one_line_per_variant_with_phase_markers():
    fig = plots.memory_timeline_figure(_timelines())
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["original", "onnx"]  # a variant without samples is not drawn
    markers = [t for t in fig.data if t.mode and "markers" in t.mode]
    onnx_marks = next(t for t in markers if t.name == "onnx")
    assert list(onnx_marks.x) == [1.5] and list(onnx_marks.y) == [150.0]  # interpolated on the curve
    assert not fig.layout.shapes  # several variants: no vertical lines cluttering the plot


def test_memory_timeline_highlights_the_running_variant():
    fig = plots.memory_timeline_figure(_timelines(), running="onnx")
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    assert lines["onnx (running)"].line.width > lines["original"].line.width
    assert lines["original"].opacity < 1
    labelled = next(t for t in fig.data if t.mode == "markers+text")
    assert labelled.name == "onnx" and list(labelled.text) == ["load"]
    assert [s.x0 for s in fig.layout.shapes] == [1.5]  # its phases as vertical lines


def test_memory_timeline_selection_and_empty():
    fig = plots.memory_timeline_figure(_timelines(), selected=["original"])
    assert [t.name for t in fig.data if t.mode == "lines"] == ["original"]
    assert len(fig.layout.shapes) == 2  # the only variant shown gets its phase lines
    empty = plots.memory_timeline_figure(_timelines(), selected=[])
    assert "No memory samples" in empty.layout.annotations[0].text


# ---- confusion matrices ------------------------------------------------------------------------------------


def test_confusion_heatmap_counts_and_orientation():
    fig = plots.confusion_heatmap([[5, 1], [2, 4]], ["neg", "pos"], "Original")
    hm = fig.data[0]
    assert np.asarray(hm.z).tolist() == [[5, 1], [2, 4]]
    assert np.asarray(hm.text).tolist() == [["5", "1"], ["2", "4"]]
    assert list(fig.layout.yaxis.range) == [1.5, -0.5]  # first class on top
    assert fig.layout.title.text == "Original"


def test_confusion_diff_heatmap_is_centred_and_clickable():
    diff = np.array([[0, 0, 1], [2, -3, 0], [0, 0, 0]])
    fig = plots.confusion_diff_heatmap(diff, ["a", "b", "c"], selected=(1, 0))
    hm, cells = fig.data
    assert hm.zmid == 0 and hm.zmin == -3 and hm.zmax == 3
    assert np.asarray(hm.text)[1].tolist() == ["+2", "\u22123", "0"]
    assert len(cells.x) == 9 and cells.marker.color == "rgba(0,0,0,0)"
    assert [list(c) for c in cells.customdata][3] == [1, 0, 2.0]  # row-major: (true b, predicted a)
    assert (cells.y[3], cells.x[3]) == ("b", "a")
    shape = fig.layout.shapes[0]
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (-0.5, 0.5, 0.5, 1.5)


def test_confusion_diff_heatmap_all_zero_is_white():
    fig = plots.confusion_diff_heatmap(np.zeros((2, 2)), ["a", "b"])
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1


def test_cell_from_selection_formats():
    labels = ["neg", "pos"]
    assert plots.cell_from_selection(None) is None
    assert plots.cell_from_selection({"points": []}) is None
    assert plots.cell_from_selection({"points": [{"customdata": [1, 0, 2.0]}]}) == (1, 0)
    assert plots.cell_from_selection({"points": [{"customdata": {"0": 0, "1": 1, "2": -1}}]}) == (0, 1)
    assert plots.cell_from_selection({"points": [{"x": "neg", "y": "pos"}]}, labels) == (1, 0)
    assert plots.cell_from_selection({"points": [{"x": "?", "y": "pos"}]}, labels) is None


# ---- DataFrame builders -------------------------------------------------------------------------------------


@pytest.fixture
def fake(tmp_path):
    store, run_id = fake_store(tmp_path, with_failed=True)
    variants = store.variants(run_id)
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in variants}
    return store, run_id, variants, preds, store.examples(run_id)


def test_metrics_frame_ratios_and_computed_figures(fake):
    _store, _run_id, variants, preds, examples = fake
    for v in variants:  # metrics without accuracy/agreement: computed from the predictions
        v["metrics"].pop("accuracy", None)
    df = rd.metrics_frame(variants, preds, examples["labels"], 2)
    assert list(df["variant"]) == ["original", "onnx", "onnx-int8", "torchscript"]
    assert list(df["status"]) == ["done", "done", "done", "failed"]
    assert df.loc[2, "accuracy"] == pytest.approx(9 / 12)
    assert df.loc[0, "accuracy"] == pytest.approx(10 / 12)
    assert df.loc[2, "agreement"] == pytest.approx(9 / 12)
    assert df.loc[1, "agreement"] == 1.0
    assert df.loc[2, "disk_ratio"] == pytest.approx(22 / 87)
    assert df.loc[2, "latency_b1_ratio"] == pytest.approx(0.25)
    assert df.loc[2, "throughput_ratio"] == pytest.approx(266 / 88)
    assert df.loc[2, "accuracy_delta_pts"] == pytest.approx(-100 / 12)
    assert math.isnan(df.loc[3, "peak_rss_mib"]) and math.isnan(df.loc[3, "disk_ratio"])
    assert df.loc[2, "techniques"] == "onnx \u2192 onnx-int8"


def test_metrics_frame_prefers_stored_figures_and_handles_no_original():
    variants = [{"idx": 1, "name": "x", "status": "done", "metrics": {"accuracy": 0.5, "disk_mib": 3}}]
    df = rd.metrics_frame(variants)
    assert df.loc[1, "accuracy"] == 0.5 and math.isnan(df.loc[1, "disk_ratio"])
    assert rd.metrics_frame([]).empty


def test_table_frame_headers_carry_the_batch_size(fake):
    _, _, variants, preds, examples = fake
    table = rd.table_frame(rd.metrics_frame(variants, preds, examples["labels"], 2))
    assert {"Variant", "Peak RAM (MiB)", "Latency b8 median (ms)", "Latency b8 ratio", "Size ratio"} <= set(table)
    assert table["Variant"].tolist()[0] == "original"


def test_changed_examples_and_pair_filter(fake):
    _, _, _, preds, examples = fake
    changed = rd.changed_examples(examples, preds[0], preds[2])
    assert changed["example"].tolist() == INT8_CHANGED
    assert changed["effect"].tolist() == ["fixed", "broken", "broken"]
    assert changed["original_prob"].tolist() == [0.9, 0.9, 0.9] and changed["variant_prob"].tolist() == [0.7] * 3
    assert rd.changed_examples(examples, preds[0], preds[1]).empty
    assert rd.filter_pair(changed, 0, None)["example"].tolist() == [2, 4]
    assert rd.filter_pair(changed, 1, 0)["example"].tolist() == [7]
    assert rd.filter_pair(changed, 1, 1)["example"].tolist() == [7]  # moved out of (positive, positive)
    assert rd.filter_pair(changed, None, None)["example"].tolist() == INT8_CHANGED


def test_changed_examples_three_classes_wrong_either_way():
    examples = {"texts": ["a", "b", "c"], "labels": [0, 1, 2], "label_names": ["x", "y", "z"]}
    orig = {"preds": [1, 1, 2], "probs": [[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0, 0, 1]]}
    var = {"preds": [2, 1, 2], "probs": [[0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0, 0, 1]]}
    changed = rd.changed_examples(examples, orig, var)
    assert changed[["true", "original", "variant", "effect"]].values.tolist() == [["x", "y", "z", "changed"]]
    assert changed["variant_prob"].tolist() == [0.5]


def test_variant_notes(fake):
    store, run_id, variants, _, _ = fake
    notes = rd.variant_notes(variants, store.get_run(run_id))
    assert ("torchscript", "failed", "failed: torch.jit.trace failed: unsupported op") in notes
    assert ("torchscript", "warning", "torch.jit.trace is deprecated in favour of torch.export") in notes
    assert not any("random weights" in msg for _, _, msg in notes)
    preset = rd.variant_notes(variants, {"request": {"model": "preset:roberta-base"}})
    assert preset[0][1] == "warning" and "random weights" in preset[0][2]


def test_variant_notes_shared_by_several_variants_are_shown_once():
    note = "random weights: accuracy not meaningful"
    variants = [{"idx": i, "name": n, "status": "done", "notes": [note]} for i, n in enumerate(["a", "b", "c"])]
    variants[2]["notes"].append("ORT: value_info dropped")
    assert rd.variant_notes(variants) == [
        ("all variants", "warning", note),
        ("c", "info", "ORT: value_info dropped"),
    ]
    variants[1]["notes"] = []
    assert rd.variant_notes(variants)[0] == ("a, c", "warning", note)


def test_confusion_flatten_and_run_label():
    assert rd.confusion([0, 1, 1, 2], [0, 2, 1, 2], 3).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert rd.flatten({"a": 1, "b": {"c": None, "d": "x"}}) == [("a", "1"), ("b.c", ""), ("b.d", "x")]
    label = rd.run_label(
        {
            "created_at": "2025-01-02T03:04:05",
            "model": "default",
            "dataset": "tweets",
            "status": "running",
            "n_variants": 4,
            "n_done": 1,
        }
    )
    assert label == "2025-01-02 03:04 \u00b7 default \u00b7 tweets \u00b7 1/4 variants \u00b7 running"


def test_tradeoff_scatter_colours_follow_the_variant_and_single_best_point_has_no_line():
    df = _frame().iloc[[0, 2]]  # original and onnx-int8 only (onnx failed): int8 keeps its own colour
    fig = plots.tradeoff_scatter(df, "disk_mib")
    points = next(t for t in fig.data if t.name == "variants")
    assert list(points.marker.color) == [plots.variant_color(0), plots.variant_color(2)]
    one = plots.tradeoff_scatter(_frame().iloc[[0, 1]], "disk_mib")  # same disk, same accuracy: no step to draw
    assert not [t for t in one.data if t.name == "Pareto frontier"]


def test_phase_positions_line_up_every_variant_phase_by_phase():
    order = ["import", "load", "latency", "evaluation"]
    short = [("import", 0.0), ("load", 1.0), ("latency", 1.5), ("evaluation", 2.0)]
    long = [("import", 0.0), ("load", 10.0), ("latency", 30.0), ("evaluation", 40.0)]
    # the start of each phase lands on its slot's left edge, whatever the real durations
    assert list(plots.phase_positions(np.array([0.0, 1.0, 1.5, 2.0]), short, order)) == [0.0, 1.0, 2.0, 3.0]
    assert list(plots.phase_positions(np.array([0.0, 10.0, 30.0, 40.0]), long, order)) == [0.0, 1.0, 2.0, 3.0]
    # half-way through load is 1.5 for both; the last phase ends at the last sample
    assert plots.phase_positions(np.array([0.5]), short, order)[0] == pytest.approx(0.5)
    assert plots.phase_positions(np.array([20.0, 50.0]), long + [], order)[0] == pytest.approx(1.5)
    assert plots.phase_positions(np.array([45.0, 50.0]), long, order)[-1] == pytest.approx(4.0)


def test_memory_by_phase_marks_each_peak_and_a_high_water_mark_above_the_samples():
    timelines = {
        "original": {"t": [0.0, 1.0, 2.0, 3.0], "mib": [100.0, 400.0, 380.0, 390.0],
                     "phases": [["import", 0.0], ["load", 1.0], ["evaluation", 2.0]]},
        "onnx": {"t": [0.0, 0.1, 0.2, 0.3], "mib": [90.0, 150.0, 160.0, 155.0],
                 "phases": [["import", 0.0], ["load", 0.1], ["evaluation", 0.2]]},
    }
    peaks = {"original": (400.0, "load", "sampled"), "onnx": (210.0, "load", "kernel high-water mark")}
    fig = plots.memory_by_phase_figure(timelines, peaks)
    assert list(fig.layout.xaxis.ticktext) == ["import", "load", "evaluation"]
    marks = {t.name: t for t in fig.data if t.name and (t.name.endswith(": peak") or "high-water" in t.name)}
    assert marks["original: peak"].y[0] == 400.0 and marks["original: peak"].x[0] == pytest.approx(1.0)
    assert marks["onnx: peak"].y[0] == 160.0 and marks["onnx: peak"].x[0] == pytest.approx(2.0)
    assert marks["onnx: high-water mark"].y[0] == 210.0 and marks["onnx: high-water mark"].x[0] == 1.5
    assert "original: high-water mark" not in marks  # its reported peak is a sample: nothing extra to mark
    assert "No memory samples" in plots.memory_by_phase_figure(timelines, selected=[]).layout.annotations[0].text
