"""Runs on a full or read-only disk: the run fails saying so and what it was writing, nothing half-written stays,
the store stays consistent with every earlier run byte-identical, and the next run after space is freed works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiling import paths
from profiling.jobs import runner
from profiling.store import runs as store_module
from profiling.store.runs import RunStore
from tests.helpers import REPO
from tests.helpers.engine import tiny_request
from tests.helpers.store_files import filled_store, integrity, run_digests

FP16 = [{"chain": [{"technique": "torch-fp16"}]}]


@pytest.fixture(autouse=True)
def _fresh_damage_checks(monkeypatch):
    monkeypatch.setattr(store_module, "_CHECKED", set())


def _use(monkeypatch, data: Path, store: Path) -> None:
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(data))
    monkeypatch.setenv("COMPRESSION_STORE", str(store))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _half_written(data: Path) -> list[str]:
    """Temp folders of builds (``*.partial`` artifacts, ``.tmp-*`` models) left in the data folder."""
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if ".partial" in p.name
                  or p.name.startswith(".tmp-"))


def _folder_kib(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


def _run(request: dict, store: RunStore) -> str:
    run_id = store.create_run(runner.normalize_request(request))
    runner.execute(run_id, store)
    return run_id


@pytest.mark.slow  # two real runs of the tiny model (each profiles in a fresh child process)
def test_disk_full_while_an_artifact_is_written(small_disk, tmp_path, monkeypatch, tiny_artifact, toy_csv, fault):
    case = fault("disk full while an artifact is written",
                 "run failed: 'disk full' + artifact + folder; no partial; runs intact; next run works")
    # Room for the run's copy of the model and a little more: the fp16 artifact (about 3 MB here) cannot fit.
    disk = small_disk("data", _folder_kib(tiny_artifact.path) + 512)
    store_path = tmp_path / "runs.sqlite"
    _use(monkeypatch, disk.path, store_path)
    filled_store(store_path, n_runs=2)
    before = run_digests(store_path)
    store = RunStore(store_path)

    run_id = _run(tiny_request(tiny_artifact.path, toy_csv, FP16), store)
    run, variants = store.get_run(run_id), store.variants(run_id)
    artifacts = paths.artifacts_dir()
    case.saw(f"run {run['status']}: {run['error']}", run["status"] == "failed")
    assert run["status"] == "failed"
    assert variants[0]["status"] == "done"
    assert variants[1]["status"] == "failed"
    want = "disk full: no space left while writing the torch-fp16 artifact torch-fp16-"
    assert variants[1]["error"].startswith(want) and f" in {artifacts};" in variants[1]["error"], variants[1]["error"]
    assert run["error"] == variants[1]["error"]
    assert case.saw(f"half-written left: {_half_written(disk.path)}", _half_written(disk.path) == [])
    assert list(artifacts.iterdir()) == []  # no artifact folder at all: nothing whole was written
    assert case.saw(f"integrity_check {integrity(store_path)}", integrity(store_path) == "ok")
    after = run_digests(store_path)
    assert case.saw("earlier runs byte-identical", {k: after[k] for k in before} == before)

    disk.resize(_folder_kib(tiny_artifact.path) + 16 * 1024)  # space freed
    again = _run(tiny_request(tiny_artifact.path, toy_csv, FP16), store)
    statuses = [v["status"] for v in store.variants(again)]
    assert case.saw(f"next run {store.get_run(again)['status']} {statuses}",
                    store.get_run(again)["status"] == "done" and statuses == ["done", "done"])
    assert _half_written(disk.path) == []
    assert {k: run_digests(store_path)[k] for k in before} == before


@pytest.mark.slow  # a real run in its own process
def test_disk_full_while_the_store_is_written_during_a_run(small_disk, tmp_path, monkeypatch, tiny_artifact, toy_csv,
                                                           fault):
    case = fault("disk full while a run writes the store",
                 "process says 'disk full' + the store; consistent; runs intact; failed; next run works")
    disk = small_disk("store", 2048)
    store_path = disk.path / "runs.sqlite"
    _use(monkeypatch, tmp_path / "data", store_path)
    filled_store(store_path, n_runs=2)
    before = run_digests(store_path)
    store = RunStore(store_path)
    run_id = store.create_run(runner.normalize_request(tiny_request(tiny_artifact.path, toy_csv, [], repeats=20)))
    proc = subprocess.Popen([sys.executable, "-m", "profiling", "execute", run_id, "--store", str(store_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while store.variants(run_id)[0]["status"] != "profiling":  # measuring: the disk fills up now
            assert time.monotonic() < deadline and proc.poll() is None, proc.poll()
            time.sleep(0.05)
        filler = disk.fill(leave_bytes=0)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = [line for line in out.splitlines() if "disk full" in line]
    case.saw(said[-1] if said else out[-300:], bool(said))
    assert f"disk full: no space left while writing the run store {store_path}" in out, out[-2000:]
    assert proc.returncode != 0
    filler.unlink()
    assert case.saw(f"integrity_check {integrity(store_path)}", integrity(store_path) == "ok")
    after = run_digests(store_path)
    assert case.saw("earlier runs byte-identical", {k: after[k] for k in before} == before)
    store.reap_dead_runs()  # its process has ended: the run is failed, not left running
    run = store.get_run(run_id)
    assert case.saw(f"run {run['status']}", run["status"] == "failed")
    # Space freed: the next run's writes work (a whole real run after a full disk: the artifact case above).
    again = store.create_run(runner.normalize_request(tiny_request(tiny_artifact.path, toy_csv, [])))
    store.set_run_status(again, "running")
    store.append_timeline(again, 0, [(0.05 * i, 100.0 + i) for i in range(500)], [("load", 0.1)])
    store.set_predictions(again, 0, [0, 1] * 6, [[0.25, 0.75]] * 12)
    store.upsert_variant(again, 0, status="done", metrics={"accuracy": 0.5})
    store.set_run_status(again, "done")
    assert case.saw(f"next run's writes: {store.get_run(again)['status']}", store.get_run(again)["status"] == "done")
    assert integrity(store_path) == "ok"


def test_a_read_only_data_folder_fails_the_run_saying_so(small_disk, tmp_path, monkeypatch, tiny_artifact, toy_csv,
                                                         fault):
    case = fault("read-only data folder", "run failed: 'read-only' + what + where; runs intact")
    disk = small_disk("data", 1024)
    disk.read_only()
    store_path = tmp_path / "runs.sqlite"
    _use(monkeypatch, disk.path, store_path)
    filled_store(store_path, n_runs=2)
    before = run_digests(store_path)
    store = RunStore(store_path)
    run_id = _run(tiny_request(tiny_artifact.path, toy_csv, FP16), store)
    run = store.get_run(run_id)
    case.saw(f"run {run['status']}: {run['error']}", run["status"] == "failed")
    assert run["status"] == "failed"
    assert run["error"] == (f"failed during preparing the model: read-only: cannot write the folder models in "
                            f"{disk.path} (the file system is mounted read-only); point COMPRESSION_DATA_DIR at a "
                            "writable folder")
    assert all(v["status"] == "failed" for v in store.variants(run_id))
    assert list(disk.path.iterdir()) == []
    assert integrity(store_path) == "ok"
    after = run_digests(store_path)
    assert case.saw("earlier runs byte-identical", {k: after[k] for k in before} == before)
