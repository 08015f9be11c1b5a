"""The runner: request validation, a real end-to-end sweep on a tiny model, a failing variant, a killed run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from profiling.jobs import runner
from profiling.jobs.runner import RequestError, normalize_request, validate_request
from profiling.store.runs import RunStore
from tests.helpers.engine import tiny_request
from tests.helpers.toy_data import toy_rows, write_csv

PRUNE_HALF = {"technique": "prune-heads", "fraction": 0.5}


@pytest.fixture()
def good(tiny_artifact, toy_csv):
    return tiny_request(tiny_artifact.path, toy_csv, [{"name": "pruned", "chain": [PRUNE_HALF]}])


def test_a_good_request_is_normalized(good):
    req = normalize_request({**good, "settings": {"repeats": 5}})
    assert req["settings"] == {**runner.DEFAULT_SETTINGS, "repeats": 5}
    assert [v["name"] for v in req["variants"]] == ["Original", "pruned"]
    assert req["variants"][0]["chain"] == []
    assert req["variants"][1]["chain"][0]["method"] == "random"  # defaults filled from the config
    validate_request(good)  # does not raise


@pytest.mark.parametrize(
    "variants, message",
    [
        ([{"chain": [{"technique": "sharpen"}]}], "unknown technique 'sharpen'"),
        ([{"chain": [{"technique": "prune-heads", "fraction": 1.5}]}], "fraction must be"),
        ([{"chain": [{"technique": "prune-heads", "fraction": 0}]}], "fraction must be"),
        ([{"chain": [{"technique": "prune-heads", "fraction": 0.5, "speed": 3}]}], "no option speed"),
        ([{"chain": [{"technique": "onnx"}, PRUNE_HALF]}], "cannot follow"),
        ([{"chain": [{"technique": "onnx-int8"}]}], "cannot follow the original model"),
        ([{"chain": ["onnx"]}], "technique config dict"),
        ([{"chain": "onnx"}], "'chain' list"),
    ],
)
def test_bad_techniques_and_chains(good, variants, message):
    with pytest.raises(RequestError, match=message):
        validate_request({**good, "variants": variants})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"threads": 0}, "threads must be between 1 and"),
        ({"batch_size": "8"}, "batch size must be a whole number"),
        ({"eval_size": -3}, "eval size must be between"),
        ({"repeats": 2.5}, "repeats must be a whole number"),
        ({"warmup": True}, "warmup must be a whole number"),
        ({"colour": 1}, "unknown setting colour"),
    ],
)
def test_bad_settings(good, settings, message):
    with pytest.raises(RequestError, match=message):
        validate_request({**good, "settings": settings})


def test_bad_models_and_datasets(good, tmp_path, toy_csv):
    cases = [
        ({"model": ""}, "choose a model"),
        ({"model": "path:/no/such/folder"}, "does not exist"),
        ({"model": f"path:{tmp_path}"}, "not a model folder"),
        ({"model": "not a model!"}, "is not a model"),
        ({"model": "default:recipes"}, "unknown default classifier"),
        ({"dataset": {"kind": "bundled", "name": "recipes"}}, "unknown bundled dataset"),
        ({"dataset": {"kind": "sql"}}, "unknown dataset kind"),
        ({"dataset": None}, "choose a dataset"),
        (
            {"dataset": {"kind": "csv", "path": str(toy_csv), "text_column": "text", "label_column": "stars"}},
            "no column 'stars'",
        ),
        (
            {"dataset": {"kind": "csv", "path": str(toy_csv), "text_column": "text", "label_column": "text"}},
            "are the same",
        ),
        ({"dataset": {"kind": "csv", "path": str(tmp_path / "none.csv"), "text_column": "t", "label_column": "l"}},
         "dataset file not found"),
    ]
    for change, message in cases:
        with pytest.raises(RequestError, match=message):
            validate_request({**good, **change})
    with pytest.raises(RequestError, match="must be a dict"):
        validate_request(["not", "a", "dict"])


def test_execute_end_to_end_with_a_failing_variant(engine_env, tiny_artifact, toy_csv):
    store = RunStore()
    request = normalize_request(
        tiny_request(
            tiny_artifact.path,
            toy_csv,
            [
                {"name": "pruned", "chain": [PRUNE_HALF]},
                # 90 % of 4 heads would empty every layer: refused when built, and the sweep goes on
                {"name": "too much", "chain": [{"technique": "prune-heads", "fraction": 0.9}]},
                {"name": "onnx", "chain": [{"technique": "onnx"}]},
            ],
        )
    )
    run_id = store.create_run(request)
    updates = []
    before = time.time()
    runner.execute(run_id, store, on_update=lambda idx, fields: updates.append((idx, dict(fields))))
    after = time.time()

    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    assert run["env"]["usable_cores"] >= 1 and run["pid"] == os.getpid()
    start, end = run["env"]["measure_window_epoch_s"]  # the time it held the measuring lock
    assert before <= start < end <= after
    v = {x["name"]: x for x in store.variants(run_id)}
    assert [x["status"] for x in v.values()] == ["done", "done", "failed", "done"]
    assert "would remove all 4 heads" in v["too much"]["error"]

    examples = store.examples(run_id)
    assert len(examples["texts"]) == 12 and sorted(examples["label_names"]) == ["neg", "pos"]
    assert all(t in {r[0] for r in toy_rows()} for t in examples["texts"])
    for name in ("Original", "pruned", "onnx"):
        m = v[name]["metrics"]
        assert m["peak_rss_mib"] > 0 and m["disk_mib"] > 0 and m["latency_b1_median_ms"] > 0
        assert len(m["latency_b1_ms"]) == 3 and 0 <= m["accuracy"] <= 1 and len(m["confusion"]) == 2
        preds = store.predictions(run_id, v[name]["idx"])
        assert len(preds["preds"]) == 12 and len(preds["probs"][0]) == 2
        tl = store.timeline(run_id, v[name]["idx"])
        assert len(tl["t"]) == len(tl["mib"]) > 0
        assert [p[0] for p in tl["phases"]][:2] == ["import", "load"] and tl["phases"][-1][0] == "done"
    assert v["Original"]["metrics"]["agreement"] == 1.0
    assert v["onnx"]["metrics"]["agreement"] >= 0.9  # same weights, another runtime
    assert v["pruned"]["metrics"]["param_count"] < v["Original"]["metrics"]["param_count"]
    assert v["pruned"]["lineage"] == ["prune-heads"] and v["onnx"]["lineage"][0].startswith("onnx")
    assert any("No retraining" in n for n in v["pruned"]["notes"])
    statuses = [f.get("status") for idx, f in updates if idx == 1 and "status" in f]
    assert statuses == ["building", "profiling", "done"]

    from profiling.report.tables import format_table, results_frame

    df = results_frame(store, run_id)
    assert list(df["Variant"]) == ["Original", "pruned", "too much", "onnx"]
    assert df.loc[0, "Size ratio"] == pytest.approx(1.0)
    assert df.loc[1, "Size ratio"] < 1.0
    text = format_table(df)
    assert "too much: failed: pruning a fraction 0.9" in text

    with pytest.raises(RequestError, match="already finished"):
        runner.execute(run_id, store)


def test_failing_original_fails_the_run(engine_env, tiny_artifact, tmp_path):
    # Three classes in the data, two labels in the model: a clear reason, nothing profiled.
    rows = toy_rows(30) + [(f"so so film number {i}", "meh") for i in range(15)]
    csv_path = write_csv(tmp_path / "three.csv", rows)
    store = RunStore()
    request = tiny_request(tiny_artifact.path, csv_path, [])
    with pytest.raises(RequestError, match="predicts 2 labels"):  # the launch check refuses it before any run
        normalize_request(request)
    run_id = store.create_run(normalize_request(request, precheck=False))  # a run stored before that check
    runner.execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "predicts 2 labels" in run["error"] and "3 classes" in run["error"]
    assert "Traceback" not in run["error"]
    assert store.variants(run_id)[0]["status"] == "failed"


def test_label_names_are_matched_and_reordered():
    from profiling.inputs.datasets import DatasetError, LabeledData

    data = LabeledData("d", ["Positive", "Negative"], ["a", "b"], [0, 1], ["c", "d"], [1, 0])
    meta = {"num_labels": 2, "id2label": {"0": "negative", "1": "positive"}, "random_weights": False}
    out = runner.match_labels(meta, data)
    assert out.label_names == ["Negative", "Positive"] and out.train_labels == [1, 0] and out.test_labels == [0, 1]
    with pytest.raises(DatasetError, match="do not match"):
        runner.match_labels({**meta, "id2label": {"0": "sports", "1": "politics"}}, data)
    # Generic names or random weights: only the count must match.
    assert runner.match_labels({**meta, "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}, data) is data
    assert runner.match_labels({**meta, "id2label": {"0": "x", "1": "y"}, "random_weights": True}, data) is data


def test_killed_background_run_is_reaped_and_earlier_runs_stay(engine_env, tiny_artifact, toy_csv):
    store = RunStore()
    earlier = store.create_run(normalize_request(tiny_request(tiny_artifact.path, toy_csv, [])))
    runner.execute(earlier, store)
    assert store.get_run(earlier)["status"] == "done"
    before = store.variants(earlier)

    # Many latency repeats keep the run busy long enough to be killed while it profiles.
    run_id = runner.launch(tiny_request(tiny_artifact.path, toy_csv, [], repeats=5000))
    pid = store.get_run(run_id)["pid"]
    assert pid and pid != os.getpid()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run["status"] == "running" and store.variants(run_id)[0]["status"] == "profiling":
            break
        assert run["status"] in ("queued", "running"), run["error"]
        time.sleep(0.05)
    else:
        pytest.fail("the launched run never started profiling")
    assert store.reap_dead_runs() == 0  # alive: left alone
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while store.reap_dead_runs() == 0:
        assert time.monotonic() < deadline, "the killed run was never reaped"
        time.sleep(0.1)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("the run's process ended unexpectedly (killed or crashed) during profiling")
    assert store.variants(run_id)[0]["status"] == "failed"
    assert store.get_run(earlier)["status"] == "done" and store.variants(earlier) == before


def test_sigterm_marks_the_run_failed(engine_env, tiny_artifact, toy_csv):
    store = RunStore()
    run_id = runner.launch(tiny_request(tiny_artifact.path, toy_csv, [], repeats=5000))
    deadline = time.monotonic() + 120
    while store.variants(run_id)[0]["status"] != "profiling":
        assert time.monotonic() < deadline and store.get_run(run_id)["status"] in ("queued", "running")
        time.sleep(0.05)
    assert runner.stop(run_id)  # sends SIGTERM to the run's process
    deadline = time.monotonic() + 30
    while store.get_run(run_id)["status"] == "running":
        assert time.monotonic() < deadline, "SIGTERM did not stop the run"
        time.sleep(0.1)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == f"stopped by signal {int(signal.SIGTERM)} during profiling variant 1/1 'Original'"
    assert store.variants(run_id)[0]["status"] == "failed"
    assert not runner.stop(run_id)  # finished: nothing to stop
