"""AppTests with a damaged run store: the app still starts, says once which file was damaged and where it went."""

from __future__ import annotations

import os

from profiling.store import runs as store_module
from tests.helpers.store_files import filled_store, moved_files, truncate_half

HISTORY = "pages/history.py"


def warnings(at) -> list[str]:
    return [str(w.value) for w in at.warning]


def test_truncated_store_app_starts_and_says_where_it_moved(app_env, open_page, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "_CHECKED", set())
    path = app_env / "runs.sqlite"
    ids = filled_store(path, n_runs=3)
    truncate_half(path)
    at = open_page()  # the first page of a session says it
    [moved] = moved_files(app_env)
    [text] = [w for w in warnings(at) if "was damaged" in w]
    assert str(path) in text and str(moved) in text and "3 run(s)" in text
    at.switch_page(HISTORY).run()  # the next page of the same session: said once, and the runs are there
    assert not at.exception and not at.error
    assert not [w for w in warnings(at) if "was damaged" in w]
    shown = " ".join(str(df.value) for df in at.dataframe) + " ".join(str(s.options) for s in at.selectbox)
    assert all(run_id in shown for run_id in ids)


def test_random_bytes_store_app_starts_on_the_run_page(app_env, open_page, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "_CHECKED", set())
    path = app_env / "runs.sqlite"
    path.write_bytes(os.urandom(32_768))
    at = open_page()
    [moved] = moved_files(app_env)
    [text] = [w for w in warnings(at) if "was damaged" in w]
    assert "not a database" in text and str(moved) in text
    assert not at.error and at.button(key="launch") is not None  # the set-up form is there: the app is usable
    at.button(key="dismiss_store_notice").click().run()
    assert store_module.RunStore(path).recovery_notice() is None
