"""Killed processes: ``kill -9`` of a run's own process mid-build, of its profiling child mid-measurement, and of the
process that launched it (the dashboard) while it goes. None leaves an orphan process or a half-written artifact;
the run is marked failed (finished, when only the launcher died) and every earlier run stays byte-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from profiling import paths
from profiling.jobs import runner
from profiling.store import runs as store_module
from profiling.store.runs import RunStore
from tests.helpers import REPO
from tests.helpers.engine import tiny_request
from tests.helpers.store_files import filled_store, integrity, run_digests

pytestmark = pytest.mark.slow  # each case is a real run of the tiny model in its own process


@pytest.fixture(autouse=True)
def _fresh_damage_checks(monkeypatch):
    monkeypatch.setattr(store_module, "_CHECKED", set())


def _wait(what: str, ok: Callable[[], object], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _half_written(data: Path) -> list[str]:
    return sorted(p.name for p in paths.artifacts_dir().iterdir() if ".partial" in p.name) + sorted(
        p.name for p in (data / "models").glob(".tmp-*"))


@pytest.fixture
def earlier(engine_env):
    """Two finished runs already in the store, and their digests."""
    path = Path(os.environ["COMPRESSION_STORE"])
    filled_store(path, n_runs=2)
    return path, run_digests(path)


def _intact(path: Path, before: dict) -> bool:
    after = run_digests(path)
    return integrity(path) == "ok" and {k: after.get(k) for k in before} == before


def test_the_runs_own_process_killed_mid_build(earlier, engine_env, tiny_artifact, toy_csv, fault):
    case = fault("kill -9 of the run's process (mid-build)",
                 "run failed 'killed or crashed'; no orphan; partial build removed; runs intact")
    path, before = earlier
    store = RunStore(path)
    long_build = [{"chain": [{"technique": "qat", "steps": 100_000}]}]  # trains for minutes: killed while building
    run_id = runner.launch(tiny_request(tiny_artifact.path, toy_csv, long_build))
    pid = store.get_run(run_id)["pid"]
    _wait("the build's temp folder", lambda: any(".partial" in p.name for p in paths.artifacts_dir().iterdir())
          and store.variants(run_id)[1]["status"] == "building")
    family = [pid, *_tree(pid)]
    os.kill(pid, signal.SIGKILL)
    _wait("the run to be reaped", lambda: store.reap_dead_runs() or store.get_run(run_id)["status"] == "failed", 30)
    run = store.get_run(run_id)
    case.saw(f"run {run['status']}: {run['error']}", run["status"] == "failed")
    assert run["error"].startswith("the run's process ended unexpectedly (killed or crashed) during building "
                                   "variant 2/2"), run["error"]
    assert [v["status"] for v in store.variants(run_id)] == ["done", "failed"]
    _wait("its processes to end", lambda: not any(_running(p) for p in family), 15)
    case.saw(f"{len(family)} process(es) of the run, none left")
    assert case.saw(f"half-written left: {_half_written(engine_env)}", _half_written(engine_env) == [])
    assert case.saw("earlier runs byte-identical", _intact(path, before))


def test_a_profiling_child_killed_mid_measurement(earlier, engine_env, tiny_artifact, toy_csv, fault):
    case = fault("kill -9 of a profiling child (mid-measurement)",
                 "variant failed naming the signal; run failed; no orphan; runs intact")
    path, before = earlier
    store = RunStore(path)
    run_id = runner.launch(tiny_request(tiny_artifact.path, toy_csv, [], repeats=5000))
    pid = store.get_run(run_id)["pid"]

    def measuring() -> list:  # the profiling child, once its worker reports progress
        kids = [c for c in psutil.Process(pid).children() if "profiling.measure.child" in " ".join(c.cmdline())]
        return kids if kids and store.variants(run_id)[0]["progress"] > 0 else []

    _wait("the measurement", measuring)
    [child] = measuring()
    family = [child.pid, *_tree(child.pid)]
    assert len(family) >= 2  # the child and the worker it forked
    child.send_signal(signal.SIGKILL)
    _wait("the run to finish", lambda: store.get_run(run_id)["status"] == "failed")
    run, [variant] = store.get_run(run_id), store.variants(run_id)
    case.saw(f"variant {variant['status']}: {variant['error']}", variant["status"] == "failed")
    assert "signal 9" in variant["error"] or "SIGKILL" in variant["error"], variant["error"]
    assert run["error"].startswith("the original model could not be profiled: "), run["error"]
    _wait("the run's process and the measuring worker to end", lambda: not any(_running(p) for p in [pid, *family]),
          30)
    case.saw(f"run process and {len(family)} profiling process(es): none left")
    assert _half_written(engine_env) == []
    assert case.saw("earlier runs byte-identical", _intact(path, before))


LAUNCHER = """
import json, sys, time
from profiling.jobs import runner
print(runner.launch(json.loads(sys.argv[1])), flush=True)
time.sleep(600)
"""


def test_the_dashboard_killed_while_a_run_goes(earlier, engine_env, tiny_artifact, toy_csv, fault):
    """The process that launched the run (runner.launch, as the Run page does) dies; the run goes on in its own
    session and a new app session follows it to the end."""
    import json

    case = fault("kill -9 of the dashboard while a run goes",
                 "run goes on and finishes; a restarted app follows it; no orphan; runs intact")
    path, before = earlier
    store = RunStore(path)
    request = tiny_request(tiny_artifact.path, toy_csv, [], repeats=30)
    dashboard = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(request)], cwd=REPO,
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    run_id = dashboard.stdout.readline().strip()
    assert store.get_run(run_id), run_id
    pid = store.get_run(run_id)["pid"]
    _wait("the run to start", lambda: store.get_run(run_id)["status"] == "running")
    dashboard.send_signal(signal.SIGKILL)
    dashboard.wait()
    assert _running(pid)  # the run lives on without the process that launched it
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)  # the dashboard, restarted: a new session
    at.run()
    assert not at.exception
    assert at.query_params.get("run") in (run_id, [run_id])  # the Run page attached to the active run
    case.saw(f"restarted app follows run {store.get_run(run_id)['status']}")
    _wait("the run to finish", lambda: store.get_run(run_id)["status"] not in ("queued", "running"), 180)
    run = store.get_run(run_id)
    assert case.saw(f"run {run['status']}", run["status"] == "done"), run["error"]
    at.run()
    assert not at.exception and not at.error
    page = " ".join(str(m.value) for m in at.markdown) + " ".join(str(c.value) for c in at.caption)
    assert "done" in page.lower()
    _wait("the run's process to end", lambda: not _running(pid), 30)
    assert _half_written(engine_env) == []
    assert case.saw("earlier runs byte-identical", _intact(path, before))
