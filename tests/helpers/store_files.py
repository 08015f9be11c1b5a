"""Store files for damage tests: a filled store, a truncated copy, and the files moved aside; a concurrent writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from profiling.store import runs as store_module
from profiling.store.runs import RunStore

FILL_REQUEST = {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "settings": {},
                "variants": [{"name": "Original", "chain": [], "lineage": []}]}


def filled_store(path: Path, n_runs: int = 6) -> list[str]:
    """A store with finished runs, each with a long timeline and examples (several pages), WAL checkpointed."""
    store = RunStore(path)
    ids = []
    for _ in range(n_runs):
        run_id = store.create_run(FILL_REQUEST)
        store.upsert_variant(run_id, 0, status="done", metrics={"accuracy": 0.8})
        store.append_timeline(run_id, 0, [(t * 0.05, 100.0 + t) for t in range(2000)], [("load", 0.1)])
        store.set_examples(run_id, [f"text {j} " * 5 for j in range(300)], [j % 2 for j in range(300)], ["a", "b"])
        store.set_run_status(run_id, "done")
        ids.append(run_id)
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    store_module._CHECKED.clear()
    return ids


def truncate_half(path: Path) -> bytes:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    return path.read_bytes()


def moved_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm")))


def write_timeline(path: str, run_id: str, n: int) -> None:
    """Append n timeline samples and progress updates to a run's variant 1 (run in a separate process)."""
    store = RunStore(path)
    for i in range(n):
        store.append_timeline(run_id, 1, [(i * 0.05, 100.0 + i)], [("tick", i * 0.05)] if i % 10 == 0 else [])
        store.upsert_variant(run_id, 1, progress=(i + 1) / n, status="profiling")
