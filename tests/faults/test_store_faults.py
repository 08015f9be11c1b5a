"""Store faults: a store locked by another process, a store from a future schema, a read-only store folder, a full
disk under the store, a damaged store. Each says what is wrong, and every earlier run stays byte-identical."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiling.store import runs as store_module
from profiling.store.runs import RunStore, StoreError
from tests.helpers.store_files import filled_store, integrity, run_digests

LOCK_TIMEOUT_S = 1.0
HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
con.execute("UPDATE meta SET value=value WHERE key='schema_version'")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture(autouse=True)
def _fresh_damage_checks(monkeypatch):
    monkeypatch.setattr(store_module, "_CHECKED", set())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_locked_by_another_process_is_named_within_the_timeout(tmp_path, fault):
    case = fault("store locked by another process", "'locked' named, within the timeout; reads go on; runs intact")
    path = tmp_path / "runs.sqlite"
    filled_store(path, n_runs=2)
    before = run_digests(path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = RunStore(path, timeout_s=LOCK_TIMEOUT_S)
        assert case.saw(f"{len(store.list_runs())} runs still listed", len(store.list_runs()) == 2)  # WAL: reads go on
        t0 = time.monotonic()
        with pytest.raises(StoreError) as refused:
            store.create_run({"model": "default", "variants": []})
        waited = time.monotonic() - t0
        message = str(refused.value)
        case.saw(message, message.startswith(f"locked: the run store {path} is locked by another process"))
        assert message.startswith(f"locked: the run store {path} is locked by another process")
        assert f"waited {LOCK_TIMEOUT_S:g} s" in message
        assert case.saw(f"gave up after {waited:.1f} s", LOCK_TIMEOUT_S * 0.8 <= waited < LOCK_TIMEOUT_S + 5)
    finally:
        holder.kill()
        holder.wait()
    assert integrity(path) == "ok" and run_digests(path) == before
    RunStore(path).create_run({"model": "default", "variants": []})  # the lock gone: writes work again
    case.saw("write works once the lock is released")


def test_a_store_from_a_future_schema_is_refused_and_left_untouched(tmp_path, fault):
    case = fault("store from a future schema", "refused with 'newer version', file byte-identical")
    path = tmp_path / "runs.sqlite"
    filled_store(path, n_runs=1)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    digest = _sha(path)
    with pytest.raises(StoreError) as refused:
        RunStore(path)
    message = str(refused.value)
    case.saw(message, "written by a newer version of this tool (schema 99" in message)
    assert "written by a newer version of this tool (schema 99, this code knows" in message
    assert "left as it is" in message
    assert case.saw("file unchanged", _sha(path) == digest)
    assert not list(tmp_path.glob("*.damaged-*"))


def test_a_store_on_a_read_only_folder_is_named(small_disk, fault):
    case = fault("store folder read-only", "'read-only' named, file byte-identical")
    disk = small_disk("store", 2048)
    path = disk.path / "runs.sqlite"
    filled_store(path, n_runs=2)
    digest = _sha(path)
    disk.read_only()
    with pytest.raises(StoreError) as refused:
        RunStore(path).create_run({"model": "default", "variants": []})
    message = str(refused.value)
    case.saw(message, message.startswith(f"read-only: cannot open the run store {path}"))
    assert message.startswith(f"read-only: cannot open the run store {path}")
    assert case.saw("file unchanged", _sha(path) == digest)
    disk.read_only(False)
    assert integrity(path) == "ok"


def test_a_full_disk_under_the_store_refuses_the_write_and_keeps_every_run(small_disk, fault):
    case = fault("disk full while the store is written", "'disk full' + the store named; consistent; runs intact")
    disk = small_disk("store", 1024)
    path = disk.path / "runs.sqlite"
    filled_store(path, n_runs=2)
    before = run_digests(path)
    filler = disk.fill(leave_bytes=0)
    big = [f"a long example text number {i} " * 20 for i in range(400)]  # ~250 kB: cannot fit
    with pytest.raises(StoreError) as refused:  # opening (its -shm index), creating the run or storing its examples
        store = RunStore(path)
        run_id = store.create_run({"model": "default", "variants": []})
        store.set_examples(run_id, big, [i % 2 for i in range(400)], ["a", "b"])
    message = str(refused.value)
    case.saw(message, message.startswith(f"disk full: no space left while writing the run store {path}"))
    assert message.startswith(f"disk full: no space left while writing the run store {path}")
    filler.unlink()
    assert case.saw(f"integrity_check {integrity(path)}", integrity(path) == "ok")
    assert case.saw("earlier runs byte-identical", {k: v for k, v in run_digests(path).items() if k in before} == before)
    store = RunStore(path)
    run_id = store.create_run({"model": "default", "variants": []})  # space freed: the next write works
    store.set_examples(run_id, big[:50], [i % 2 for i in range(50)], ["a", "b"])
    assert store.examples(run_id)["texts"] == big[:50]
    case.saw("next write after freeing space works")


def test_a_damaged_store_found_by_the_cli_is_moved_aside_and_recovered(tmp_path, fault):
    """The app's side of this (AppTest) is tests/faults/test_app_faults.py."""
    case = fault("truncated store (CLI)", "moved aside (bytes kept), runs recovered, new store works")
    path = tmp_path / "runs.sqlite"
    ids = filled_store(path, n_runs=4)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    damaged = _sha(path)
    env = {**os.environ, "COMPRESSION_STORE": str(path), "COMPRESSION_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "profiling", "list"], check=False, capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    [moved] = [p for p in tmp_path.glob("runs.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    case.saw(f"moved to {moved.name}", _sha(moved) == damaged)
    assert _sha(moved) == damaged  # never deleted, never changed
    listed = [run_id for run_id in ids if run_id in done.stdout]
    case.saw(f"{len(listed)} of {len(ids)} runs listed after recovery", len(listed) >= 1)
    assert "was damaged" in done.stdout + done.stderr
    RunStore(path).create_run({"model": "default", "variants": []})
    assert integrity(path) == "ok"


def test_random_bytes_as_the_store(tmp_path, fault):
    case = fault("random bytes as the store", "moved aside (bytes kept), 'not a database' said, new store works")
    path = tmp_path / "runs.sqlite"
    garbage = os.urandom(32_768)
    path.write_bytes(garbage)
    store = RunStore(path)
    notice = store.recovery_notice()
    case.saw(f"reason: {notice['reason']}", "not a database" in notice["reason"])
    assert "not a database" in notice["reason"] and notice["runs"] == 0
    [moved] = [p for p in tmp_path.glob("runs.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert case.saw(f"moved to {moved.name}, bytes kept", moved.read_bytes() == garbage)
    run_id = store.create_run({"model": "default", "variants": []})
    assert store.get_run(run_id) and integrity(path) == "ok"
