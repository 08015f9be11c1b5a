"""The store's jobs table (sweeps, sensitivity maps): round trip, reaping, read-only, and the schema-1 migration."""

from __future__ import annotations

import sqlite3

import pytest

from profiling.store import runs as store_module
from profiling.store.runs import SCHEMA_VERSION, ReadOnlyError, RunStore
from tests.helpers.store_files import schema1_store, table_rows


@pytest.fixture()
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def test_a_job_goes_from_queued_to_done_with_its_result(store):
    job_id = store.create_job("sweep", {"run_id": "r1", "spec": {"batch_sizes": [1]}}, run_id="r1")
    job = store.get_job(job_id)
    assert job["status"] == "queued" and job["kind"] == "sweep" and job["run_id"] == "r1"
    assert job["request"] == {"run_id": "r1", "spec": {"batch_sizes": [1]}} and job["result"] is None
    store.start_job(job_id)
    store.set_job_progress(job_id, 1.7, "point 3/4")  # clamped to [0, 1]
    job = store.get_job(job_id)
    assert job["status"] == "running" and job["progress"] == 1.0 and job["stage"] == "point 3/4"
    assert job["started_ts"] is not None and job["started_at"]
    store.finish_job(job_id, {"points": [{"ms_per_batch": float("nan")}]})
    job = store.get_job(job_id)
    assert job["status"] == "done" and job["finished_ts"] >= job["started_ts"]
    assert job["result"]["points"][0]["ms_per_batch"] != job["result"]["points"][0]["ms_per_batch"]  # NaN kept
    other = store.create_job("sensitivity", {"technique": "int8"})
    assert [j["id"] for j in store.list_jobs()] == [other, job_id]
    assert [j["id"] for j in store.list_jobs("sweep")] == [job_id]
    assert store.list_jobs(run_id="r1")[0]["result"] is None  # results only when asked for
    assert store.list_jobs("sweep", with_results=True)[0]["result"]["points"]
    store.fail_job(job_id, "too late")  # a finished job stays finished
    assert store.get_job(job_id)["status"] == "done"
    store.delete_job(job_id)
    assert store.get_job(job_id) is None and len(store.list_jobs()) == 1
    with pytest.raises(ValueError, match="unknown job kind 'cook'"):
        store.create_job("cook", {})


def test_unreadable_result_shows_the_job_failed(store):
    job_id = store.create_job("sensitivity", {})
    con = sqlite3.connect(store.path)
    con.execute("UPDATE jobs SET status='done', result='{broken' WHERE id=?", (job_id,))
    con.commit()
    con.close()
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == store_module.UNREADABLE and job["result"] is None


def test_dead_and_never_started_jobs_are_reaped(store, monkeypatch):
    dead = store.create_job("sweep", {})
    store.set_job_pid(dead, 2**22 + 12345)  # no such process
    store.start_job(dead)
    waiting = store.create_job("sweep", {})  # no process yet, just created: left alone
    assert store.reap_dead_jobs() == 1
    assert store.get_job(dead)["status"] == "failed"
    assert store.get_job(dead)["error"].startswith("the job's process ended unexpectedly")
    assert store.get_job(waiting)["status"] == "queued"
    monkeypatch.setattr(store_module, "NEVER_STARTED_S", -1.0)
    assert store.reap_dead_jobs() == 1
    assert store.get_job(waiting)["error"] == "the job never started (no process picked it up)"


def test_read_only_refuses_to_launch_or_delete_jobs(store, monkeypatch):
    job_id = store.create_job("sensitivity", {})
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="cannot launch a sweep job"):
        store.create_job("sweep", {})
    with pytest.raises(ReadOnlyError, match="cannot delete a job"):
        store.delete_job(job_id)
    assert store.get_job(job_id)["status"] == "queued" and store.reap_dead_jobs() == 0


def test_deleting_a_run_deletes_its_sweeps(store):
    run_id = store.create_run({"model": "default", "variants": []})
    sweep = store.create_job("sweep", {}, run_id=run_id)
    other = store.create_job("sensitivity", {})
    store.delete_run(run_id)
    assert store.get_job(sweep) is None and store.get_job(other) is not None


def test_a_schema_1_store_opens_gains_the_jobs_table_and_keeps_every_run(tmp_path):
    path = tmp_path / "old.sqlite"
    ids = schema1_store(path)
    before = table_rows(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT name FROM sqlite_master WHERE name='jobs'").fetchone() is None
    con.close()

    store = RunStore(path)
    assert table_rows(path) == before  # every run row byte-identical after the migration
    con = sqlite3.connect(path)
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    con.close()
    assert int(version) == SCHEMA_VERSION == 2
    assert [r["id"] for r in store.list_runs()] == ids[::-1]
    assert store.predictions(ids[0], 0) == {"preds": [0, 1], "probs": [[0.75, 0.25], [0.125, 0.875]]}
    assert len(store.timeline(ids[0], 0)["t"]) == 2000
    job_id = store.create_job("sweep", {"run_id": ids[0]}, run_id=ids[0])
    store_module._CHECKED.clear()
    again = RunStore(path)  # opening the migrated store again changes nothing
    assert again.get_job(job_id)["run_id"] == ids[0] and table_rows(path) == before


def test_a_damaged_store_keeps_its_jobs_and_a_damaged_schema_1_store_has_none_to_miss(tmp_path):
    from tests.helpers.store_files import filled_store, truncate_half

    path = tmp_path / "runs.sqlite"
    filled_store(path, n_runs=2)
    store = RunStore(path)
    job_id = store.create_job("sensitivity", {"technique": "int8"})
    store.finish_job(job_id, {"rows": [], "technique": "int8"})
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    # the jobs root page is allocated with the schema, near the start of the file: one small row survives in it
    truncate_half(path)
    store_module._CHECKED.clear()
    recovered = RunStore(path)
    assert recovered.recovery is not None
    assert recovered.get_job(job_id)["result"] == {"rows": [], "technique": "int8"}

    old = tmp_path / "old.sqlite"
    schema1_store(old)
    truncate_half(old)
    recovered = RunStore(old)
    assert recovered.recovery is not None and recovered.list_jobs() == []
    assert not [p for p in recovered.recovery["problems"] if "jobs" in p]  # no jobs table to salvage: not a problem
