"""The measuring queue: waiters take the store's measuring lock in launch order, one at a time, and every
process sees each waiting record's position."""

from __future__ import annotations

import fcntl
import itertools
import multiprocessing
import os
import time
from pathlib import Path

from profiling.jobs import launcher
from profiling.store.runs import RunStore

HOLD_S = 0.4
REQUEST = {"model": "m", "variants": [{"name": "original", "chain": []}]}


def _wait_and_measure(path: str, run_id: str, out: multiprocessing.Queue) -> None:
    store = RunStore(Path(path))
    store.set_run_pid(run_id, os.getpid())
    told: list[str] = []
    with launcher.exclusive(store, told.append, run_id):
        start = time.time()
        store.set_run_status(run_id, "running")
        time.sleep(HOLD_S)
        store.set_run_status(run_id, "done")
        end = time.time()
    out.put((run_id, start, end, told))


def test_waiters_take_the_lock_in_launch_order_and_see_their_positions(tmp_path):
    path = tmp_path / "store.sqlite"
    store = RunStore(path)
    ids = [store.create_run(REQUEST) for _ in range(4)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    lock_fd = os.open(launcher.lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # something else measures while they all start: they must queue
    # started newest first, so that an order of arrival at the lock would not pass for launch order
    procs = [ctx.Process(target=_wait_and_measure, args=(str(path), run_id, out)) for run_id in reversed(ids)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for r in launcher.queue(store) if r["pid"]) < len(ids):
        time.sleep(0.1)
    positions = {r["id"]: r["position"] for r in launcher.queue(store)}
    assert positions == {run_id: n for n, run_id in enumerate(ids, 1)}
    fcntl.flock(lock_fd, fcntl.LOCK_UN)
    os.close(lock_fd)
    results = sorted((out.get(timeout=60) for _ in ids), key=lambda r: r[1])
    for p in procs:
        p.join(timeout=30)
    assert [r[0] for r in results] == ids  # launch order
    for (_, _, end, _), (_, start, _, _) in itertools.pairwise(results):
        assert end <= start  # one at a time
    last_told = results[-1][3]
    assert last_told and "launched earlier" in last_told[0]  # the last one knew others were ahead of it
    assert launcher.queue(store) == []
