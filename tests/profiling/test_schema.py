"""profiling.schema: the statuses and the metrics registry that the store, the bundles and the tables read."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from profiling import schema
from profiling.report import frames, tables
from profiling.schema import METRICS, RunStatus, VariantStatus, key_of, label_of, metric
from profiling.store import bundle, runs


def test_status_values_are_the_stored_strings():
    assert [s.value for s in RunStatus] == ["queued", "running", "done", "failed"]
    assert [s.value for s in VariantStatus] == ["pending", "building", "profiling", "done", "failed"]
    assert RunStatus.DONE == "done" and "failed" == VariantStatus.FAILED
    assert isinstance(RunStatus.QUEUED, str) and str(RunStatus.QUEUED) == "queued" and f"{VariantStatus.DONE}" == "done"
    assert runs.RUN_STATUSES == tuple(RunStatus) and runs.VARIANT_STATUSES == tuple(VariantStatus)
    assert "running" in runs.RUN_STATUSES and "building" in runs.VARIANT_STATUSES
    assert "bogus" not in runs.RUN_STATUSES


def test_status_read_from_a_store_equals_the_enum(tmp_path):
    store = runs.RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m", "dataset": "d", "techniques": []})
    assert store.get_run(run_id)["status"] == RunStatus.QUEUED
    store.set_run_status(run_id, RunStatus.RUNNING)
    store.upsert_variant(run_id, 0, name="original", status=VariantStatus.PROFILING)
    run, (variant,) = store.get_run(run_id), store.variants(run_id)
    # the records carry the enum members, which are the stored strings
    assert run["status"] is RunStatus.RUNNING and run["status"] == "running" and f"{run['status']}" == "running"
    assert variant["status"] is VariantStatus.PROFILING and variant["status"] == "profiling"
    assert json.loads(json.dumps(run))["status"] == "running"
    store.set_run_status(run_id, "done")  # plain strings keep working
    assert store.get_run(run_id)["status"] == RunStatus.DONE
    with pytest.raises(ValueError, match="unknown run status"):
        store.set_run_status(run_id, "finished")


def test_a_status_no_version_knows_reads_as_failed_and_says_so(tmp_path):
    import sqlite3

    store = runs.RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run({"model": "m", "dataset": "d", "techniques": []})
    with sqlite3.connect(store.path) as con:  # as a future version might write it
        con.execute("UPDATE runs SET status='paused' WHERE id=?", (run_id,))
        con.execute("UPDATE variants SET status='paused' WHERE run_id=?", (run_id,))
    run = store.get_run(run_id)
    assert run["status"] is RunStatus.FAILED and "unknown status 'paused'" in run["error"]
    assert store.variants(run_id)[0]["status"] is VariantStatus.FAILED
    assert store.list_runs()[0]["status"] is RunStatus.FAILED


def test_registry_round_trip_and_lookups():
    keys = [m.key for m in METRICS]
    assert len(set(keys)) == len(keys) and len({m.label for m in METRICS}) == len(keys)
    for m in METRICS:
        assert metric(m.key) is m
        assert key_of(label_of(m.key)) == m.key
        assert m.better in ("lower", "higher", None)
        assert m.fmt.format(1.5)  # a usable format
    with pytest.raises(KeyError, match="nope"):
        metric("nope")
    with pytest.raises(KeyError):
        key_of("Nope (ms)")
    with pytest.raises(AttributeError):
        METRICS[0].label = "x"  # frozen


def test_both_tables_read_the_registry_in_the_same_order():
    assert list(tables.METRIC_COLUMNS.items()) == [(m.label, m.key) for m in METRICS]
    assert list(frames.FIGURES.items()) == [(m.key, m.label) for m in METRICS]
    # the labels users see, unchanged
    assert list(tables.METRIC_COLUMNS)[:3] == ["Peak RAM (MiB)", "Disk (MiB)", "Load (s)"]
    assert label_of("macro_f1") == "Macro-F1" and label_of("latency_bN_median_ms") == "Latency bN median (ms)"
    # every figure column of the reference table is a registry label
    figures = [c for c in tables.COLUMNS if c in tables.METRIC_COLUMNS]
    assert figures == [m.label for m in METRICS]
    # the CLI's figure columns are registry labels too
    assert all(c in tables.METRIC_COLUMNS for c in tables.CLI_COLUMNS
               if c not in tables.RATIO_COLUMNS and c not in ("Variant", tables.VERDICT))


def test_results_table_headers_come_from_the_registry():
    variants = [{"idx": 0, "name": "original", "status": "done", "lineage": [],
                 "metrics": {m.key: 1.0 for m in METRICS} | {"batch_size": 8}}]
    heads = frames.display_columns(frames.metrics_frame(variants))
    for m in METRICS:
        assert heads[m.key] == m.label.replace("bN", "b8")


def test_bundle_numeric_metrics_are_the_registry_plus_settings():
    assert set(bundle.NUMERIC_METRICS) == {m.key for m in METRICS} | {"threads", "batch_size"}
    assert len(bundle.NUMERIC_METRICS) == 15
    assert schema.SETTING_METRICS == ("threads", "batch_size")


def _old_macro_f1(labels, preds, n):
    """frames._macro_f1 before it used profiling.measure.evaluation (kept here to check the two agree)."""
    cm = frames.confusion(labels, preds, n)
    scores = []
    for k in range(n):
        tp, fp, fn = cm[k, k], cm[:, k].sum() - cm[k, k], cm[k, :].sum() - cm[k, k]
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else math.nan


@pytest.mark.parametrize(("labels", "preds", "n"), [
    ([0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 1], 3),
    ([0, 0, 1, 1], [0, 0, 0, 0], 4),  # classes 2 and 3 absent from both; class 1 never predicted
    ([1, 1, 1], [1, 1, 1], 2),
])
def test_frames_macro_f1_is_the_evaluation_one(labels, preds, n):
    from profiling.measure.evaluation import classification_metrics

    expected = classification_metrics(labels, preds, n)["macro_f1"]
    assert frames._macro_f1(labels, preds, n) == pytest.approx(expected, abs=1e-12)
    assert frames._macro_f1(labels, preds, n) == pytest.approx(_old_macro_f1(labels, preds, n), abs=1e-12)


def test_metrics_frame_fills_macro_f1_from_predictions():
    labels, preds = [0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 1]
    variants = [{"idx": 0, "name": "original", "status": "done", "lineage": [], "metrics": {}}]
    df = frames.metrics_frame(variants, {0: {"preds": preds, "probs": []}}, labels, 3)
    assert df.loc[0, "macro_f1"] == pytest.approx(_old_macro_f1(labels, preds, 3))
    assert df.loc[0, "status"] == "done"


def test_cli_table_formats_come_from_the_registry():
    figures = {c: fmt for c, (_, fmt) in tables.CLI_COLUMNS.items() if c in tables.METRIC_COLUMNS}
    assert len(figures) == 11
    assert all(fmt == metric(key_of(label)).fmt for label, fmt in figures.items())
    assert tables.CLI_COLUMNS["Peak RAM (MiB)"] == ("peak MiB", "{:.0f}")
    assert tables.CLI_COLUMNS["Macro-F1"] == ("F1", "{:.3f}")


def test_run_label_reads_the_run_status():
    run = {"created_at": "2026-01-01T10:00:00", "model": "m", "dataset": "d", "n_variants": 3, "n_done": 1}
    assert "1/3 variants" in frames.run_label({**run, "status": RunStatus.RUNNING})
    assert "3 variants" in frames.run_label({**run, "status": "done"}) and "/3" not in frames.run_label(
        {**run, "status": "done"})
