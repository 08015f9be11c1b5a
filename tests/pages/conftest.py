"""AppTest fixtures: an isolated data folder and run store per test, and helpers to open a page of app.py."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import REPO

APP = REPO / "app.py"
TIMEOUT = 60


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """A fresh data folder and store for the app under test (never the user's own data)."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(data))
    monkeypatch.setenv("COMPRESSION_STORE", str(data / "runs.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return data


@pytest.fixture
def store(app_env):
    from profiling.store.runs import RunStore

    return RunStore(app_env / "runs.sqlite")


@pytest.fixture
def open_page(app_env):
    """``open_page(page=None, query=None)``: a fresh session of app.py on that page (e.g. "pages/history.py")."""
    return _open_page


@pytest.fixture
def queued_run(store):
    """``queued_run(request) -> run_id``: what runner.launch leaves before its process starts (no process)."""
    from profiling.jobs import runner
    def make(request: dict) -> str:
        return store.create_run(runner.normalize_request(request))

    return make


def _open_page(page: str | None = None, query: dict | None = None, session: dict | None = None) -> AppTest:
    """Run app.py, switch to ``page`` and run it; fails on an uncaught exception."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    if query:
        at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page)
        if query:
            at.query_params.update(query)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def fake_launch(queued_run, monkeypatch):
    """Replace runner.launch: record each request and leave a queued run in the test store (no process)."""
    import json

    from profiling.jobs import runner
    calls: list[dict] = []

    def launch(request, store_path=None):
        calls.append(json.loads(json.dumps(request)))
        return queued_run(request)

    monkeypatch.setattr(runner, "launch", launch)
    return calls
