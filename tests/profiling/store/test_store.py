"""The run store: round trips, concurrent reading while a process writes, corrupt records, reaping, deletion."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from profiling.store.runs import UNREADABLE, RunStore, StoreError
from tests.helpers import REPO

REQUEST = {
    "model": "default",
    "dataset": {"kind": "bundled", "name": "movie-reviews"},
    "variants": [{"name": "Original", "chain": []}, {"name": "ONNX Runtime", "chain": [{"technique": "onnx"}]}],
    "settings": {"threads": 2, "batch_size": 8, "repeats": 5, "warmup": 1, "eval_size": 20, "seed": 0},
}


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def _raw(store: RunStore, sql: str, args=()):
    con = sqlite3.connect(store.path)
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def test_round_trip(store):
    run_id = store.create_run(REQUEST)
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["request"]["model"] == "default" and run["error"] is None
    assert [v["name"] for v in store.variants(run_id)] == ["Original", "ONNX Runtime"]
    assert store.variants(run_id)[1]["lineage"] == ["onnx"]

    store.set_run_status(run_id, "running")
    store.set_run_env(run_id, {"cpu_model": "test cpu"})
    metrics = {"peak_rss_mib": 123.5, "latency_b1_ms": [1.0, 2.0], "confusion": [[3, 1], [0, 4]], "nan": float("nan")}
    store.upsert_variant(
        run_id, 1, status="done", progress=1.0, metrics=metrics, notes=["a note"], lineage=["onnx:opset=18"]
    )
    store.add_variant_note(run_id, 1, "second note")
    store.add_variant_note(run_id, 1, "second note")  # no duplicate
    store.append_timeline(run_id, 1, [(0.0, 10.0), (0.05, 11.0)], [("import", 0.0)])
    store.append_timeline(run_id, 1, [(0.1, 12.5)], [])
    store.append_timeline(run_id, 1, [], [("load", 0.09)])
    store.set_examples(run_id, ["good", "bad"], [1, 0], ["neg", "pos"])
    store.set_predictions(run_id, 1, [1, 1], [[0.2, 0.8], [0.4, 0.6]])
    store.set_run_status(run_id, "done")

    run = store.get_run(run_id)
    assert run["status"] == "done" and run["finished_at"] and run["env"] == {"cpu_model": "test cpu"}
    v = store.variants(run_id)[1]
    assert v["status"] == "done" and v["progress"] == 1.0 and v["lineage"] == ["onnx:opset=18"]
    assert v["metrics"]["latency_b1_ms"] == [1.0, 2.0] and v["metrics"]["confusion"] == [[3, 1], [0, 4]]
    assert v["notes"] == ["a note", "second note"]
    assert store.timeline(run_id, 1) == {
        "t": [0.0, 0.05, 0.1],
        "mib": [10.0, 11.0, 12.5],
        "phases": [["import", 0.0], ["load", 0.09]],
    }
    assert store.timeline(run_id, 0) == {"t": [], "mib": [], "phases": []}
    store.append_timeline(run_id, 0, [(0.0, 5.0)], [("load", 0.0)])  # a live preview, out of order
    store.replace_timeline(run_id, 0, [(0.0, 5.0), (0.05, 6.0)], [("import", 0.0), ("load", 0.01), ("done", 0.05)])
    assert store.timeline(run_id, 0) == {"t": [0.0, 0.05], "mib": [5.0, 6.0],
                                         "phases": [["import", 0.0], ["load", 0.01], ["done", 0.05]]}
    assert store.timeline(run_id, 1)["t"] == [0.0, 0.05, 0.1]  # another variant's is untouched
    assert store.examples(run_id) == {"texts": ["good", "bad"], "labels": [1, 0], "label_names": ["neg", "pos"]}
    assert store.predictions(run_id, 1) == {"preds": [1, 1], "probs": [[0.2, 0.8], [0.4, 0.6]]}
    assert store.predictions(run_id, 0) is None

    listed = store.list_runs()
    assert listed[0]["id"] == run_id and listed[0]["n_variants"] == 2 and listed[0]["n_done"] == 1
    assert listed[0]["techniques"] == ["ONNX Runtime"] and listed[0]["dataset"] == "movie-reviews"
    # A second RunStore on the same file (another process would do the same) sees everything.
    assert RunStore(store.path).variants(run_id)[1]["metrics"]["peak_rss_mib"] == 123.5


def test_original_is_always_variant_zero(store):
    run_id = store.create_run({**REQUEST, "variants": [{"name": "ONNX", "chain": [{"technique": "onnx"}]}]})
    variants = store.variants(run_id)
    assert [v["chain"] for v in variants] == [[], [{"technique": "onnx"}]]


def test_list_runs_newest_first(store):
    first = store.create_run(REQUEST)
    second = store.create_run(REQUEST)
    assert [r["id"] for r in store.list_runs()] == [second, first]


def test_bad_values_refused(store):
    run_id = store.create_run(REQUEST)
    with pytest.raises(ValueError):
        store.upsert_variant(run_id, 0, colour="red")
    with pytest.raises(ValueError):
        store.upsert_variant(run_id, 0, status="exploded")
    with pytest.raises(ValueError):
        store.set_run_status(run_id, "exploded")


def test_concurrent_reader_while_a_process_writes(store):
    run_id = store.create_run(REQUEST)
    n = 150
    # A plain subprocess, not multiprocessing's spawn: spawn re-runs the parent's __main__, which other
    # tests in the same session (AppTest) may have replaced.
    code = f"from tests.helpers.store_files import write_timeline; write_timeline({str(store.path)!r}, {run_id!r}, {n})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(REPO))
    seen, reads = 0, 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        tl = store.timeline(run_id, 1)
        assert len(tl["t"]) == len(tl["mib"]) >= seen  # never shrinks, never torn
        seen = len(tl["t"])
        store.list_runs()
        reads += 1
    assert proc.wait(30) == 0
    tl = store.timeline(run_id, 1)
    assert tl["mib"] == [100.0 + i for i in range(n)]
    assert len(tl["phases"]) == 15
    assert store.variants(run_id)[1]["progress"] == 1.0
    assert reads > 1


def test_corrupt_json_fields_are_skipped_with_a_warning(store, caplog):
    run_id = store.create_run(REQUEST)
    store.upsert_variant(run_id, 0, status="done", metrics={"peak_rss_mib": 1.0})
    store.upsert_variant(run_id, 1, status="done", metrics={"peak_rss_mib": 2.0})
    store.append_timeline(run_id, 1, [(0.0, 1.0)], [])
    store.append_timeline(run_id, 1, [(0.1, 2.0)], [])
    store.append_timeline(run_id, 1, [(0.2, 3.0)], [])
    store.set_predictions(run_id, 1, [0], [[1.0, 0.0]])
    _raw(store, "UPDATE variants SET metrics='{not json' WHERE run_id=? AND idx=1", (run_id,))
    _raw(store, "UPDATE timeline SET mib='[1,' WHERE run_id=? AND idx=1 AND seq=1", (run_id,))
    _raw(store, "UPDATE predictions SET probs='nope' WHERE run_id=?", (run_id,))
    other = store.create_run(REQUEST)
    _raw(store, "UPDATE runs SET request='{{' WHERE id=?", (other,))

    with caplog.at_level(logging.WARNING, logger="profiling.store.runs"):
        variants = store.variants(run_id)
        timeline = store.timeline(run_id, 1)
        preds = store.predictions(run_id, 1)
        runs = store.list_runs()
    assert variants[0]["status"] == "done" and variants[0]["metrics"] == {"peak_rss_mib": 1.0}
    assert variants[1]["status"] == "failed" and variants[1]["error"] == UNREADABLE and variants[1]["metrics"] == {}
    assert timeline["t"] == [0.0, 0.2] and timeline["mib"] == [1.0, 3.0]  # the bad chunk only is skipped
    assert preds is None
    assert {r["id"] for r in runs} == {run_id, other}
    assert store.get_run(other)["error"] == UNREADABLE
    assert "unreadable" in caplog.text


def test_not_a_sqlite_file_raises_store_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(StoreError, match="not a SQLite database"):
        RunStore(bad)
    assert bad.read_text().startswith("these are my notes")  # left untouched
    with pytest.raises(StoreError, match="folder"):
        RunStore(tmp_path)


def test_newer_schema_refused(store):
    _raw(store, "UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer version"):
        RunStore(store.path)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reap_dead_runs(store):
    dead = store.create_run(REQUEST)
    store.set_run_status(dead, "running")
    store.set_run_stage(dead, "profiling variant 2/2 'ONNX Runtime'")
    store.upsert_variant(dead, 0, status="done", metrics={"peak_rss_mib": 1.0})
    store.upsert_variant(dead, 1, status="profiling")
    dead_pid = _dead_pid()
    _raw(store, "UPDATE runs SET pid=?, pid_started=1.0 WHERE id=?", (dead_pid, dead))

    finished = store.create_run(REQUEST)
    store.set_run_status(finished, "done")
    _raw(store, "UPDATE runs SET pid=?, pid_started=1.0 WHERE id=?", (dead_pid, finished))

    alive = store.create_run(REQUEST)
    store.set_run_status(alive, "running")
    store.set_run_pid(alive, os.getpid())

    reused = store.create_run(REQUEST)  # a live pid, but another process than the one that started the run
    store.set_run_status(reused, "running")
    _raw(store, "UPDATE runs SET pid=?, pid_started=12345.0 WHERE id=?", (os.getpid(), reused))

    fresh_queued = store.create_run(REQUEST)  # no process yet, just created: left alone

    assert store.reap_dead_runs() == 2
    run = store.get_run(dead)
    assert run["status"] == "failed" and run["finished_at"]
    assert run["error"] == (
        "the run's process ended unexpectedly (killed or crashed) during profiling variant 2/2 'ONNX Runtime'"
    )
    assert [v["status"] for v in store.variants(dead)] == ["done", "failed"]
    assert store.variants(dead)[0]["metrics"] == {"peak_rss_mib": 1.0}
    assert store.get_run(finished)["status"] == "done" and store.get_run(finished)["error"] is None
    assert store.get_run(alive)["status"] == "running"
    assert store.get_run(reused)["status"] == "failed"
    assert store.get_run(fresh_queued)["status"] == "queued"
    assert store.reap_dead_runs() == 0


def test_delete_removes_everything_of_one_run(store):
    keep = store.create_run(REQUEST)
    gone = store.create_run(REQUEST)
    for run_id in (keep, gone):
        store.append_timeline(run_id, 0, [(0.0, 1.0)], [("import", 0.0)])
        store.set_examples(run_id, ["x"], [0], ["a", "b"])
        store.set_predictions(run_id, 0, [0], [[0.9, 0.1]])
    store.delete_run(gone)
    assert store.get_run(gone) is None and store.variants(gone) == []
    for table in ("variants", "timeline", "examples", "predictions"):
        assert _raw(store, f"SELECT COUNT(*) FROM {table} WHERE run_id=?", (gone,))[0][0] == 0
        assert _raw(store, f"SELECT COUNT(*) FROM {table} WHERE run_id=?", (keep,))[0][0] > 0
    assert store.timeline(keep, 0)["mib"] == [1.0]
    assert [r["id"] for r in store.list_runs()] == [keep]


def test_delete_is_transactional(store, monkeypatch):
    run_id = store.create_run(REQUEST)
    store.append_timeline(run_id, 0, [(0.0, 1.0)], [])
    # Make the last statement of the delete fail: nothing of the run may be gone.
    _raw(store, "CREATE TRIGGER no_delete BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'locked'); END")
    with pytest.raises(StoreError):
        store.delete_run(run_id)
    assert store.get_run(run_id) is not None
    assert len(store.variants(run_id)) == 2 and store.timeline(run_id, 0)["mib"] == [1.0]


def test_json_in_store_is_plain(store):
    run_id = store.create_run(REQUEST)
    (request,) = _raw(store, "SELECT request FROM runs WHERE id=?", (run_id,))[0]
    assert json.loads(request)["dataset"] == {"kind": "bundled", "name": "movie-reviews"}
