"""A damaged run store (truncated, random bytes) is moved aside, salvaged into a new store and reported; a store
from a newer schema is refused untouched."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from profiling.cli import main
from profiling.store import runs as store_module
from profiling.store.recovery import damage, describe, looks_like_text
from profiling.store.runs import RunStore, StoreError
from tests.helpers.store_files import filled_store, moved_files, truncate_half

REQUEST = {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"}, "settings": {},
           "variants": [{"name": "Original", "chain": [], "lineage": []}]}


@pytest.fixture(autouse=True)
def _fresh_checks(monkeypatch):
    """Each test starts as a new process would: no store file checked yet."""
    monkeypatch.setattr(store_module, "_CHECKED", set())


def test_truncated_store_is_moved_aside_and_its_runs_recovered(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    ids = filled_store(path)
    damaged_bytes = truncate_half(path)
    assert "malformed" in damage(path) and "truncated" in damage(path)

    store = RunStore(path)
    [moved] = moved_files(tmp_path)
    assert moved.name.startswith("runs.sqlite.damaged-")
    assert moved.read_bytes() == damaged_bytes  # moved, never deleted nor changed
    notice = store.recovery
    assert notice["damaged"] == str(path) and notice["moved_to"] == str(moved)
    assert notice["runs"] == len(ids) and notice["variants"] == len(ids)
    recovered = {r["id"]: r for r in store.list_runs()}
    assert set(recovered) == set(ids) and all(r["status"] == "done" for r in recovered.values())
    assert store.variants(ids[0])[0]["metrics"]["accuracy"] == 0.8
    text = describe(notice)
    assert str(path) in text and str(moved) in text and "6 run(s)" in text and "(not deleted)" in text
    assert damage(path) is None  # the new store is healthy and usable
    store.create_run(REQUEST)
    assert len(store.list_runs()) == len(ids) + 1


def test_random_bytes_as_the_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)
    assert not looks_like_text(garbage[:512])
    store = RunStore(path)
    [moved] = moved_files(tmp_path)
    assert moved.read_bytes() == garbage
    assert "not a database" in store.recovery["reason"] and store.recovery["runs"] == 0
    assert store.list_runs() == []
    store.create_run(REQUEST)
    assert len(store.list_runs()) == 1


def test_the_notice_persists_once_and_can_be_dismissed(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    filled_store(path, n_runs=2)
    truncate_half(path)
    first = RunStore(path)
    store_module._CHECKED.clear()  # another process opening the new store
    second = RunStore(path)
    assert second.recovery is None and len(moved_files(tmp_path)) == 1  # not recovered twice
    assert second.recovery_notice() == first.recovery
    second.dismiss_recovery_notice()
    assert first.recovery_notice() is None


def test_damage_found_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    ids = filled_store(path)
    store = RunStore(path)  # checked healthy
    truncate_half(path)
    assert {r["id"] for r in store.list_runs()} == set(ids)  # read failed, file recovered, read again
    assert store.recovery is not None and len(moved_files(tmp_path)) == 1


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    filled_store(path, n_runs=1)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"newer version of this tool \(schema 99.*left as it is"):
        RunStore(path)
    assert path.read_bytes() == before and moved_files(tmp_path) == []
    truncate_half(path)  # newer and damaged: still refused, not moved (its schema may not be ours to recover)
    with pytest.raises(StoreError, match="newer version.*also damaged"):
        RunStore(path)
    assert moved_files(tmp_path) == []


def test_someones_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("my notes, not a database\n" * 20)
    with pytest.raises(StoreError, match="not a SQLite database"):
        RunStore(path)
    assert path.read_text().startswith("my notes") and moved_files(tmp_path) == []


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_cli_list_works_on_a_damaged_store(tmp_path: Path, monkeypatch, capsys, how: str) -> None:
    path = tmp_path / "data" / "runs.sqlite"
    path.parent.mkdir()
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(path.parent))
    monkeypatch.setenv("COMPRESSION_STORE", str(path))
    ids = filled_store(path, n_runs=3)
    if how == "truncated":
        truncate_half(path)
    else:
        path.write_bytes(os.urandom(20_000))
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    [moved] = moved_files(path.parent)
    assert err.startswith("warning: The run store") and str(path) in err and str(moved) in err
    if how == "truncated":
        assert all(run_id in out for run_id in ids)
    else:
        assert "no runs in" in out
    assert main(["list"]) == 0  # later commands: the notice again for `list`, the store as it is now
    assert str(moved) in capsys.readouterr().err
