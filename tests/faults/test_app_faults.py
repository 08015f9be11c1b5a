"""The app (AppTest of app.py) on a damaged store and on a store from a future schema: it starts, says which file is
wrong, moves a damaged one aside (never deletes it), recovers what SQLite can read, and works with the new store."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

from profiling.store import runs as store_module
from profiling.store.runs import RunStore
from tests.helpers import REPO
from tests.helpers.store_files import FILL_REQUEST, filled_store, integrity, moved_files, truncate_half

TIMEOUT = 60


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(folder))
    monkeypatch.setenv("COMPRESSION_STORE", str(folder / "runs.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(store_module, "_CHECKED", set())
    return folder


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _history_text(at: AppTest) -> str:
    return " ".join(str(df.value) for df in at.dataframe) + " ".join(str(s.options) for s in at.selectbox)


def test_a_truncated_store_the_app_starts_moves_it_aside_recovers_and_works_on(data, fault):
    case = fault("truncated store (app)", "app starts, names the file, moved aside intact, runs recovered, new works")
    path = data / "runs.sqlite"
    ids = filled_store(path, n_runs=4)
    damaged = hashlib.sha256(truncate_half(path)).hexdigest()
    at = _app()
    [notice] = [str(w.value) for w in at.warning if "was damaged" in str(w.value)]
    [moved] = moved_files(data)
    case.saw(notice[:160], str(path) in notice and str(moved) in notice)
    assert f"The run store {path} was damaged" in notice and f"It was moved to {moved} (not deleted)" in notice
    assert case.saw("moved file byte-identical to the damaged one",
                    hashlib.sha256(moved.read_bytes()).hexdigest() == damaged)
    recovered = [run_id for run_id in ids if RunStore(path).get_run(run_id)]
    assert f"{len(recovered)} run(s)" in notice and recovered  # what SQLite could read, said and stored
    case.saw(f"{len(recovered)} of {len(ids)} runs recovered")
    new_id = RunStore(path).create_run(FILL_REQUEST)  # the new store takes new runs
    RunStore(path).set_run_status(new_id, "done")
    at.switch_page("pages/history.py").run()
    assert not at.exception and not at.error
    shown = _history_text(at)
    assert case.saw("History lists the recovered runs and a new one",
                    all(run_id in shown for run_id in [*recovered, new_id]))
    assert integrity(path) == "ok"


def test_a_store_from_a_future_schema_the_app_starts_and_says_so(data, fault):
    case = fault("future-schema store (app)", "app starts, says 'newer version', file byte-identical")
    path = data / "runs.sqlite"
    filled_store(path, n_runs=1)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    at = _app()
    errors = [str(e.value) for e in at.error]
    said = [e for e in errors if "newer version" in e]
    case.saw(said[0][:160] if said else f"errors: {errors}", bool(said))
    assert said and str(path) in said[0]
    assert case.saw("file unchanged", hashlib.sha256(path.read_bytes()).hexdigest() == before)
    assert moved_files(data) == []
