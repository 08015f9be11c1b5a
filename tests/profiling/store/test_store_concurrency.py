"""Many processes, each with several threads, writing and reading one run store at once: no write is lost.

Every launch (and share link) in the dashboard opens a RunStore on the live file from one of its many session
threads. Reading the file's first bytes with a plain open()/close() there dropped the POSIX locks SQLite held on it
for the process's other connections (record locks belong to the process); another process's closing connection then
took itself for the last one and deleted the -wal under them, and runs they had just created were gone."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from profiling.store.runs import RunStore

PROCESSES = 4
RUNS_PER_THREAD = 10


def _worker(path: str, out: multiprocessing.Queue) -> None:
    store = RunStore(Path(path))
    made: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def open_stores() -> None:  # what each launch does in the dashboard: a fresh RunStore on the live file
        while not stop.is_set():
            try:
                RunStore(Path(path))
            except Exception as exc:  # noqa: BLE001 - reported to the test
                errors.append(repr(exc))

    def create_runs() -> None:
        for _ in range(RUNS_PER_THREAD):
            try:
                run_id = store.create_run({"model": "m", "variants": [{"name": "original", "chain": []}]})
                made.append(run_id)
                if store.get_run(run_id) is None:
                    errors.append(f"run {run_id} not found right after it was created")
            except Exception as exc:  # noqa: BLE001 - reported to the test
                errors.append(repr(exc))

    openers = [threading.Thread(target=open_stores) for _ in range(2)]
    creators = [threading.Thread(target=create_runs) for _ in range(2)]
    for t in openers + creators:
        t.start()
    for t in creators:
        t.join()
    stop.set()
    for t in openers:
        t.join()
    out.put((made, errors))


def test_no_run_is_lost_when_processes_and_threads_share_the_store(tmp_path):
    path = tmp_path / "store.sqlite"
    RunStore(path)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    made = [r for m, _ in results for r in m]
    errors = [e for _, es in results for e in es]
    stored = {r["id"] for r in RunStore(path).list_runs()}
    assert errors == []
    assert len(made) == PROCESSES * 2 * RUNS_PER_THREAD
    assert [r for r in made if r not in stored] == []
    assert not list(tmp_path.glob("*.damaged-*"))  # nothing was taken for damage and moved aside
