"""dashboard.live: the reads shared by every session's timers are keyed by the store file's stamp, so they are
never stale, and the queue built from them is the measuring queue."""

from __future__ import annotations

import os

from dashboard import live
from profiling.jobs.launcher import queue as measuring_queue
from profiling.jobs.runner import normalize_request
from profiling.store.runs import RunStore

REQUEST = {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"},
           "variants": [{"chain": [{"technique": "torch-int8"}]}]}


def _store_with_run(tmp_path) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(normalize_request(REQUEST, precheck=False))
    store.set_run_pid(run_id, os.getpid())  # alive: the reaper leaves it alone
    return store, run_id


def test_every_write_changes_the_stamp_and_the_snapshot_follows_it(tmp_path):
    store, run_id = _store_with_run(tmp_path)
    first = live.run_snapshot(store, run_id)
    assert first["run"]["status"] == "queued" and [v["status"] for v in first["variants"]] == ["pending", "pending"]
    stamp = live.store_stamp(store.path)
    assert live.run_snapshot(store, run_id)["stamp"] == stamp  # unchanged store: the shared read is reused

    store.set_run_status(run_id, "running")
    store.upsert_variant(run_id, 0, status="profiling", progress=0.5)
    store.append_timeline(run_id, 0, [(0.0, 100.0), (0.5, 120.0)])
    assert live.store_stamp(store.path) != stamp
    now = live.run_snapshot(store, run_id)
    assert now["run"]["status"] == "running" and now["variants"][0]["status"] == "profiling"
    assert list(now["timelines"]) == [now["variants"][0]["name"]]
    assert live.change_token(now) != live.change_token(first)
    figure = live.memory_figure(now, store)
    assert figure is not None and figure["data"], figure
    table, fmt = live.results_table(now, store)
    assert len(table) == 2 and fmt


def test_progress_alone_does_not_change_the_token(tmp_path):
    store, run_id = _store_with_run(tmp_path)
    store.upsert_variant(run_id, 0, status="profiling", progress=0.1)
    before = live.run_snapshot(store, run_id)
    store.upsert_variant(run_id, 0, progress=0.6)
    after = live.run_snapshot(store, run_id)
    assert after["variants"][0]["progress"] == 0.6 and after["stamp"] != before["stamp"]  # a new read, same token
    assert live.change_token(after) == live.change_token(before)
    store.upsert_variant(run_id, 0, status="done")
    assert live.change_token(live.run_snapshot(store, run_id)) != live.change_token(after)


def test_a_dead_owner_is_reaped_through_the_snapshot(tmp_path):
    store, run_id = _store_with_run(tmp_path)
    store.set_run_pid(run_id, 2**22 + 12345)  # no such process
    snap = live.run_snapshot(store, run_id)
    assert snap["run"]["status"] == "failed" and "ended unexpectedly" in snap["run"]["error"]


def test_the_shared_queue_is_the_measuring_queue(tmp_path):
    store, run_id = _store_with_run(tmp_path)
    second = store.create_run(normalize_request(REQUEST, precheck=False))
    store.set_run_pid(second, os.getpid())
    store.set_run_status(run_id, "running")
    assert live.queue(store) == measuring_queue(store)
    assert [(e["id"], e["position"]) for e in live.queue(store)] == [(run_id, 0), (second, 1)]
    assert live.run_snapshot(store, "no-such-run") is None
