"""The one launcher: sweep and sensitivity jobs as detached processes through the store, queued behind a run under
the same measuring lock, stopped, refused when bad or read-only, and the result files of older versions imported."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from profiling.jobs import launcher, runner
from profiling.jobs.sensitivity import SensitivityError
from profiling.jobs.sweep import SweepError, SweepSpec, save_sweep, stored_sweeps
from profiling.store.runs import ReadOnlyError, RunStore
from tests.helpers.engine import tiny_request
from tests.helpers.toy_data import toy_texts

GRID = {"batch_sizes": [2], "seq_lens": [8], "threads": [1], "repeats": 2, "n_texts": 4}


def _wait(store: RunStore, job_id: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := store.get_job(job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {job}"
        time.sleep(0.1)
    return job


def _stored_run(store: RunStore, artifact) -> str:
    """A finished run whose original variant is the tiny artifact, with toy evaluation texts."""
    run_id = store.create_run({"model": f"path:{artifact.path}", "variants": []})
    store.upsert_variant(run_id, 0, status="done", artifact=str(artifact.path))
    texts, labels = toy_texts(6)
    store.set_examples(run_id, texts, labels, ["neg", "pos"])
    store.set_run_status(run_id, "done")
    return run_id


def _sensitivity_request(model_dir, csv_path) -> dict:
    return {"model": f"path:{model_dir}", "technique": "int8", "samples": 8,
            "dataset": {"kind": "csv", "path": str(csv_path), "text_column": "text", "label_column": "label"}}


def test_a_sweep_job_runs_detached_and_its_points_are_read_from_the_store(engine_env, tiny_artifact):
    store = RunStore()
    run_id = _stored_run(store, tiny_artifact)
    job_id = launcher.launch_job("sweep", {"run_id": run_id, "spec": GRID})
    queued = store.get_job(job_id)
    assert queued["run_id"] == run_id and queued["pid"] and queued["kind"] == "sweep"
    job = _wait(store, job_id)
    assert job["status"] == "done", job["error"]
    (point,) = job["result"]["points"]
    assert point["ok"], point["error"]
    assert (point["variant"], point["batch_size"], point["seq_len"], point["threads"]) == ("original", 2, 8, 1)
    assert len(point["pass_ms"]) == 2 and point["ms_per_batch"] > 0
    assert job["result"]["env"]["cpu_model"]
    (listed,) = stored_sweeps(store, run_id)
    assert listed["id"] == job_id and listed["points"] == job["result"]["points"]
    assert stored_sweeps(store, "another-run") == []


def test_bad_job_requests_are_refused_before_anything_is_stored(engine_env, tiny_artifact, toy_csv, monkeypatch):
    store = RunStore()
    run_id = _stored_run(store, tiny_artifact)
    with pytest.raises(SweepError, match="no run 'nope'"):
        launcher.launch_job("sweep", {"run_id": "nope", "spec": GRID})
    with pytest.raises(SweepError, match="has no variant 3"):
        launcher.launch_job("sweep", {"run_id": run_id, "variants": [3], "spec": GRID})
    with pytest.raises(SweepError, match="batch_sizes must be whole numbers >= 1"):
        launcher.launch_job("sweep", {"run_id": run_id, "spec": {**GRID, "batch_sizes": [0]}})
    with pytest.raises(SensitivityError, match="technique must be one of"):
        launcher.launch_job("sensitivity", {**_sensitivity_request(tiny_artifact.path, toy_csv), "technique": "x"})
    with pytest.raises(launcher.JobError, match="unknown job kind"):
        launcher.launch_job("cook", {})
    assert store.list_jobs() == []
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="read-only"):
        launcher.launch_job("sweep", {"run_id": run_id, "spec": GRID})
    assert store.list_jobs() == []


@pytest.mark.slow  # a real run and a real job, one after the other: about a minute on a busy 2-core machine
def test_a_job_launched_during_a_run_waits_for_it_under_the_same_lock(engine_env, tiny_artifact, toy_csv):
    """A sensitivity job launched while a run measures waits (its stage names the run) and starts only once the
    run has ended: the two never measure at the same time."""
    store = RunStore()
    run_id = runner.launch(tiny_request(tiny_artifact.path, toy_csv, [], repeats=5000))
    deadline = time.monotonic() + 120
    while store.variants(run_id)[0]["status"] != "profiling":
        assert time.monotonic() < deadline and store.get_run(run_id)["status"] in ("queued", "running")
        time.sleep(0.05)
    job_id = launcher.launch_job("sensitivity", _sensitivity_request(tiny_artifact.path, toy_csv))
    seen = []
    deadline = time.monotonic() + 60
    while not (store.get_job(job_id)["stage"] or "").startswith("waiting for"):
        assert time.monotonic() < deadline, store.get_job(job_id)
        seen.append((store.get_run(run_id)["status"], store.get_job(job_id)["status"]))
        time.sleep(0.05)
    job = store.get_job(job_id)
    assert job["stage"] == f"waiting for run {run_id} to finish" and job["status"] == "queued"
    time.sleep(1.0)  # it keeps waiting while the run measures
    assert store.get_job(job_id)["status"] == "queued" and store.get_run(run_id)["status"] == "running"
    assert runner.stop(run_id)
    deadline = time.monotonic() + 120
    while (job := store.get_job(job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        seen.append((store.get_run(run_id)["status"], job["status"]))
        time.sleep(0.05)
    assert ("running", "running") not in seen
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"].startswith("stopped by signal")
    assert job["status"] == "done", job["error"]
    assert job["started_ts"] >= datetime.fromisoformat(run["finished_at"]).timestamp()
    assert len(job["result"]["rows"]) == 12 and job["result"]["technique"] == "int8"


def test_a_queued_job_without_a_process_is_stopped_at_once(engine_env, tiny_artifact, toy_csv):
    store = RunStore()
    job_id = launcher.create_job("sensitivity", _sensitivity_request(tiny_artifact.path, toy_csv), store)
    assert launcher.stop_job(job_id)
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == "stopped by the user before it started"
    assert not launcher.stop_job(job_id)  # finished: nothing to stop
    with pytest.raises(launcher.JobError, match="has already failed"):
        launcher.execute_job(job_id, store)


def test_a_failing_job_is_marked_failed_with_a_readable_reason(engine_env, tmp_path, toy_csv):
    store = RunStore()
    job_id = launcher.create_job("sensitivity", {"model": f"path:{tmp_path}/missing", "samples": 8, "dataset": {
        "kind": "csv", "path": str(toy_csv), "text_column": "text", "label_column": "label"}}, store)
    job = launcher.execute_job(job_id, store)
    assert job["status"] == "failed" and "missing" in job["error"] and "Traceback" not in job["error"]


def test_result_files_of_older_versions_are_imported_once(engine_env):
    store = RunStore()
    run_id = store.create_run({"model": "default", "variants": []})
    points = [{"variant": "Original", "batch_size": 1, "seq_len": 32, "threads": 1, "ok": True, "ms_per_batch": 5.0}]
    path = save_sweep(store.path, run_id, SweepSpec(batch_sizes=(1,), seq_lens=(32,), threads=(1,)), points)
    sens_dir = engine_env / "sensitivity"
    sens_dir.mkdir(parents=True)
    the_map = {"technique": "int8", "rows": [], "baseline_accuracy": 0.5, "dataset": "toy"}
    (sens_dir / "20240101-000000-int8-toy.json").write_text(json.dumps(the_map))
    (sens_dir / "broken.json").write_text("{")

    (listed,) = stored_sweeps(store, run_id)
    assert listed["points"] == points and listed["id"] == json.loads(path.read_text())["id"]
    from profiling.jobs.sensitivity import stored_maps

    (m,) = stored_maps(store)
    assert m["result"] == the_map and m["id"] == "20240101-000000-int8-toy"
    assert len(store.list_jobs()) == 2 and path.is_file()  # the files stay where they were
    store.delete_job(m["id"])
    assert stored_maps(store) == []  # imported once: a deleted map does not come back
    assert launcher.import_json_results(store) == 0
    (sens_dir / "20240102-000000-heads-toy.json").write_text(json.dumps({**the_map, "technique": "heads"}))
    assert [m["result"]["technique"] for m in stored_maps(store)] == ["heads"]  # a file written later: imported


def test_read_only_reads_the_result_files_without_importing(engine_env, monkeypatch):
    store = RunStore()
    run_id = store.create_run({"model": "default", "variants": []})
    points = [{"variant": "Original", "batch_size": 1, "seq_len": 32, "threads": 1, "ok": True, "ms_per_batch": 5.0}]
    save_sweep(store.path, run_id, SweepSpec(batch_sizes=(1,), seq_lens=(32,), threads=(1,)), points)
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    (listed,) = stored_sweeps(store, run_id)
    assert listed["points"] == points and store.list_jobs() == []
