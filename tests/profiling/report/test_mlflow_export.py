"""Logging a stored run to MLflow, read back from a local file-based MLflow store with the MlflowClient."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from profiling import cli
from profiling.report import mlflow_export
from profiling.report.mlflow_export import MlflowExportError, log_run
from profiling.schema import METRICS
from tests.browser.conftest import free_port
from tests.helpers.fake_runs import METRICS as FAKE_METRICS
from tests.helpers.fake_runs import ORIG_PREDS, fake_store

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient


@pytest.fixture
def exported(tmp_path):
    store, run_id = fake_store(tmp_path, with_failed=True)
    uri = (tmp_path / "mlruns").as_uri()
    return store, run_id, uri, log_run(store, run_id, uri)


def test_the_parent_holds_the_environment_and_the_report_and_bundle(exported, tmp_path):
    _, run_id, uri, logged = exported
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(logged.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.experiment_id == logged.experiment_id
    assert client.get_experiment(logged.experiment_id).name == "compression-explorer"
    params = parent.data.params
    assert params["run_id"] == run_id and params["model"] == "default" and params["dataset"] == "movie-reviews"
    assert params["env.cpu_model"] == "Fake CPU" and params["env.logical_cores"] == "2"
    assert params["version.onnxruntime"] == "1.32"
    assert params["settings.batch_size"] == "8" and params["settings.eval_size"] == "12"
    assert parent.data.tags["compression.run_id"] == run_id and parent.data.tags["compression.status"] == "done"
    names = sorted(a.path for a in client.list_artifacts(logged.parent_run_id))
    assert names == [f"report-{run_id}.html", f"run-{run_id}.zip"]
    html = Path(client.download_artifacts(logged.parent_run_id, f"report-{run_id}.html", str(tmp_path))).read_text()
    assert "<html" in html.lower() and run_id in html
    with zipfile.ZipFile(client.download_artifacts(logged.parent_run_id, f"run-{run_id}.zip", str(tmp_path))) as zf:
        run_doc = json.loads(zf.read("run.json"))
        assert run_doc["id"] == run_id and "manifest.json" in zf.namelist()


def test_each_variant_is_a_child_run_with_its_chain_and_its_stored_figures(exported):
    store, run_id, uri, logged = exported
    client = MlflowClient(tracking_uri=uri)
    children = client.search_runs([logged.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{logged.parent_run_id}'")
    by_name = {c.info.run_name: c for c in children}
    stored = {v["name"]: v for v in store.variants(run_id)}
    assert set(by_name) == set(stored) == set(logged.child_run_ids)
    for name, v in stored.items():
        child = by_name[name]
        assert child.info.run_id == logged.child_run_ids[name]
        expected = {m.key: float(v["metrics"][m.key]) for m in METRICS if m.key in (v["metrics"] or {})}
        assert child.data.metrics == expected, name  # every registry figure it has, exactly as stored
        assert child.data.params["variant"] == name
    int8 = by_name["onnx-int8"].data
    assert int8.params["chain"] == "onnx>onnx-int8"
    assert int8.params["step1.technique"] == "onnx" and int8.params["step2.technique"] == "onnx-int8"
    assert int8.params["batch_size"] == "8" and int8.params["threads"] == "2"
    assert int8.metrics["latency_b1_median_ms"] == FAKE_METRICS[2]["latency_b1_median_ms"]
    assert by_name["original"].data.params["chain"] == "original"
    original_accuracy = sum(p == t for p, t in zip(ORIG_PREDS, [i % 2 for i in range(12)], strict=True)) / 12
    assert by_name["original"].data.metrics["accuracy"] == pytest.approx(original_accuracy, abs=1e-12)
    failed = by_name["torchscript"]
    assert failed.info.status == "FAILED" and failed.data.metrics == {}
    assert failed.data.tags["compression.status"] == "failed"
    assert "torch.jit.trace failed" in failed.data.tags["compression.error"]
    assert by_name["onnx"].info.status == "FINISHED"


def test_a_second_export_adds_a_new_parent_to_the_same_experiment(exported):
    store, run_id, uri, first = exported
    second = log_run(store, run_id, uri)
    assert second.parent_run_id != first.parent_run_id and second.experiment_id == first.experiment_id


def test_step_options_are_parameters():
    v = {"name": "x", "chain": [{"technique": "onnx", "optimize": True},
                                {"technique": "onnx-int8", "reduce_range": True, "weight_type": "s8"}],
         "metrics": {"accuracy": 0.5, "disk_mib": float("nan"), "format": "onnx", "threads": 2}}
    params = mlflow_export.variant_params(v)
    assert params["chain"] == "onnx:optimize=true>onnx-int8:reduce_range=true,weight_type=s8"
    assert params["step1.optimize"] == "true" and params["step2.weight_type"] == "s8"
    assert mlflow_export.variant_metrics(v) == {"accuracy": 0.5}  # not finite / not a registry figure: left out


def test_the_cli_logs_to_the_default_store_under_the_data_folder(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(data))
    store, run_id = fake_store(tmp_path)
    assert cli.main(["export", run_id, "--mlflow", "--store", str(store.path), "--experiment", "demo"]) == 0
    out = capsys.readouterr()
    uri = (data / "mlflow").resolve().as_uri()
    assert uri in out.out and "3 child runs" in out.out and "experiment 'demo'" in out.out
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("demo")
    parents = client.search_runs([exp.experiment_id], filter_string=f"tags.`compression.run_id` = '{run_id}'")
    assert len(parents) == 1 and parents[0].info.run_id in out.out
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(c.info.run_name for c in children) == ["onnx", "onnx-int8", "original"]


def _cli_error(capsys, argv) -> str:
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_an_unknown_run_is_a_clear_message(tmp_path, capsys):
    store, _ = fake_store(tmp_path)
    err = _cli_error(capsys, ["export", "nope", "--mlflow", "--store", str(store.path),
                              "--tracking-uri", str(tmp_path / "mlruns")])
    assert "error: no run 'nope' in the store" in err
    assert not (tmp_path / "mlruns").exists()  # nothing written anywhere


def test_an_unfinished_run_is_refused(tmp_path):
    store, run_id = fake_store(tmp_path, status="running")
    with pytest.raises(MlflowExportError, match="still running"):
        log_run(store, run_id, (tmp_path / "mlruns").as_uri())


def test_an_unreachable_tracking_server_is_a_clear_message_at_once(tmp_path, capsys):
    import time

    store, run_id = fake_store(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    err = _cli_error(capsys, ["export", run_id, "--mlflow", "--store", str(store.path), "--tracking-uri", uri])
    assert f"error: the MLflow tracking URI {uri} cannot be reached" in err
    assert time.monotonic() - t0 < 60  # one try, not MLflow's minutes of retries with backoff


def test_a_tracking_folder_that_cannot_be_created_is_a_clear_message(tmp_path, capsys):
    store, run_id = fake_store(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = _cli_error(capsys, ["export", run_id, "--mlflow", "--store", str(store.path),
                              "--tracking-uri", str(blocker / "mlruns")])
    assert "error: cannot use the MLflow store at file://" in err


def test_without_mlflow_installed_it_says_what_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert not mlflow_export.available()
    store, run_id = fake_store(tmp_path)
    err = _cli_error(capsys, ["export", run_id, "--mlflow", "--store", str(store.path),
                              "--tracking-uri", str(tmp_path / "mlruns")])
    assert "needs the mlflow package, which is not installed: pip install mlflow-skinny==" in err


def test_bundle_only_options_are_refused_with_mlflow_and_vice_versa(tmp_path, capsys):
    store, run_id = fake_store(tmp_path)
    err = _cli_error(capsys, ["export", run_id, "--mlflow", "-o", "x.zip", "--store", str(store.path)])
    assert "-o/--output writes a bundle file" in err
    err = _cli_error(capsys, ["export", run_id, "--tracking-uri", "x", "--store", str(store.path)])
    assert "only apply with --mlflow" in err


def test_an_imported_run_says_where_it_came_from(tmp_path):
    from profiling.store.bundle import export_bytes, import_bundle
    from profiling.store.runs import RunStore

    store, run_id = fake_store(tmp_path)
    other = RunStore(tmp_path / "other.sqlite")
    imported = import_bundle(other, export_bytes(store, run_id))
    uri = (tmp_path / "mlruns").as_uri()
    logged = log_run(other, imported, uri)
    tags = MlflowClient(tracking_uri=uri).get_run(logged.parent_run_id).data.tags
    assert tags["compression.imported_from_run"] == run_id and tags["compression.run_id"] == imported
