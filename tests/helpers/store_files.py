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


# The tables as schema version 1 created them (before the jobs table), kept verbatim to build stores of that version.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    error TEXT,
    stage TEXT,
    request TEXT NOT NULL,
    env TEXT,
    pid INTEGER,
    pid_started REAL
);
CREATE TABLE IF NOT EXISTS variants (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    chain TEXT NOT NULL DEFAULT '[]',
    lineage TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'pending',
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '[]',
    artifact TEXT,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS timeline (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t TEXT NOT NULL,
    mib TEXT NOT NULL,
    phases TEXT NOT NULL,
    PRIMARY KEY (run_id, idx, seq)
);
CREATE TABLE IF NOT EXISTS examples (
    run_id TEXT PRIMARY KEY,
    texts TEXT NOT NULL,
    labels TEXT NOT NULL,
    label_names TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    preds TEXT NOT NULL,
    probs TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
"""


def schema1_store(path: Path, n_runs: int = 2) -> list[str]:
    """A schema-1 store file (the DDL above, ``schema_version`` 1) holding finished runs with timelines and
    examples, written by today's store code into a scratch file and copied row by row; returns the run ids."""
    scratch = path.with_name(path.name + ".scratch")
    ids = filled_store(scratch, n_runs)
    store = RunStore(scratch)
    for run_id in ids:
        store.set_predictions(run_id, 0, [0, 1], [[0.75, 0.25], [0.125, 0.875]])
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA_1)
        con.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
        con.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
        for table in ("runs", "variants", "timeline", "examples", "predictions"):
            con.execute(f"INSERT INTO {table} SELECT * FROM scratch.{table}")
        con.commit()
        con.execute("DETACH DATABASE scratch")
    finally:
        con.close()
    store_module._CHECKED.clear()
    return ids


def table_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the run tables, as SQLite holds them (for byte-for-byte comparisons)."""
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                for t in ("runs", "variants", "timeline", "examples", "predictions")}
    finally:
        con.close()


RUN_TABLES = (("runs", "id"), ("variants", "run_id"), ("timeline", "run_id"), ("examples", "run_id"),
              ("predictions", "run_id"))


def run_digests(path: Path) -> dict[str, str]:
    """sha256 of every stored run's rows in every run table, as SQLite holds them (read-only, so taking it changes
    nothing): equal digests before and after a fault mean every earlier run and its figures are byte-identical."""
    import hashlib

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, str] = {}
        for (run_id,) in con.execute("SELECT id FROM runs ORDER BY id").fetchall():
            h = hashlib.sha256()
            for table, col in RUN_TABLES:
                for row in con.execute(f"SELECT * FROM {table} WHERE {col}=? ORDER BY rowid", (run_id,)):
                    h.update(repr(row).encode())
            out[run_id] = h.hexdigest()
        return out
    finally:
        con.close()


def integrity(path: Path) -> str:
    """SQLite's integrity_check of the store file: "ok" when consistent."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
    finally:
        con.close()
