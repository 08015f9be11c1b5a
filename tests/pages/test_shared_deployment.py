"""A shared deployment, tried as an intruder: read-only pages, URLs and CLI, model roots in the picker, the login gate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from profiling.store.runs import ReadOnlyError
from tests.helpers import EMPTY_SAFETENSORS
from tests.helpers.fake_runs import build_fake_run
from tests.pages.conftest import APP, TIMEOUT

# Every widget key that launches, stops, deletes, imports or changes the store.
ACTION_KEYS = ("launch", "demo_launch", "delete_button", "delete_run", "bundle_import", "bundle_upload",
               "dismiss_store_notice")
AUTH = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-a-secret",
                 "client_id": "id", "client_secret": "secret",
                 "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration"}}


def _dump(store) -> list[str]:
    """Every row of the store as SQL: equal before and after means nothing was written."""
    con = sqlite3.connect(store.path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _texts(at) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error, *at.title]
    return "\n".join(str(p.value) for p in parts)


def _action_widgets(at) -> list[str]:
    keys = [w.key for kind in ("button", "selectbox", "checkbox") for w in getattr(at, kind)]
    found = [k for k in keys if k and (k in ACTION_KEYS or k.startswith(("stop_", "delete_confirm_", "FormSubmitter")))]
    return found + [f"file_uploader:{u.label}" for u in at.get("file_uploader")]


@pytest.fixture
def shared_store(store, monkeypatch):
    """A store with a finished run and a queued run whose process is gone, then the app made read-only."""
    from profiling.jobs import runner
    done = build_fake_run(store)
    queued = store.create_run(runner.normalize_request({"model": "default", "dataset": {"kind": "bundled",
                                                        "name": "movie-reviews"}, "variants": []}))
    store.set_run_pid(queued, 999_999_9)  # no such process: a writable app would reap it
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    return store, done, queued


def _page(page: str | None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    at.run()
    if page:
        at.switch_page(page)
        at.query_params.update(query or {})
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", ["pages/run.py", "pages/sensitivity.py"])
def test_read_only_does_not_register_the_launching_pages(shared_store, page):
    at = _page(None)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page)  # the browser gets "page not found" for /run and /sensitivity


@pytest.mark.parametrize(("page", "query"), [
    (None, {}),
    (None, {"run": "QUEUED"}),  # the Run page's ?run= (follow / stop a run): lands on Results, which only shows it
    ("pages/results.py", {"run": "DONE"}),
    ("pages/results.py", {"run": "QUEUED"}),
    ("pages/results.py", {"run": "../../etc/passwd"}),
    ("pages/results.py", {"run": "DONE", "view": "shared"}),
    ("pages/history.py", {}),
    ("pages/history.py", {"run": "DONE"}),
    ("pages/demo.py", {"scenario": "quick"}),
    ("pages/demo.py", {"scenario": "reference", "run": "DONE"}),
])
def test_read_only_pages_and_urls_offer_no_action_and_write_nothing(shared_store, page, query):
    store, done, queued = shared_store
    query = {k: {"DONE": done, "QUEUED": queued}.get(v, v) for k, v in query.items()}
    before = _dump(store)
    at = _page(page, query)
    assert _action_widgets(at) == [], f"{page} {query} offers {_action_widgets(at)}"
    assert "Import a run bundle" not in _texts(at)
    assert _dump(store) == before, "a read-only page wrote to the store"
    assert store.get_run(queued)["status"] == "queued"  # not even the bookkeeping of reaping


def test_read_only_history_widgets_cannot_delete(shared_store):
    """Everything History lets a visitor touch (open, compare) leaves the store as it was."""
    store, done, queued = shared_store
    before = _dump(store)
    at = _page("pages/history.py")
    at.selectbox(key="open_run").set_value(done).run()
    at.multiselect(key="compare_runs").set_value([done, queued]).run()
    assert not at.exception and _action_widgets(at) == []
    assert _dump(store) == before and store.get_run(done) is not None


def test_read_only_demo_relaunch_and_runner_refuse(shared_store):
    """Were a launch reached some other way (a stale widget id, a future button), the runner and store refuse it."""
    from dashboard.demo import scenario_request
    from profiling.jobs import runner
    store, _, _ = shared_store
    before = _dump(store)
    with pytest.raises(ReadOnlyError, match="cannot launch a run: this installation is read-only"):
        runner.launch(scenario_request("Quick tour \u00b7 default classifier"), store.path)
    assert _dump(store) == before and not (store.path.parent / "logs").exists()


def test_read_only_sensitivity_page_body_refuses_to_compute(shared_store):
    at = AppTest.from_file(str(Path(APP).parent / "pages" / "sensitivity.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "this installation is read-only" in _texts(at)
    assert not [b.key for b in at.button if str(b.key).startswith(("FormSubmitter", "sensitivity-use-"))]


STORE_WRITES = [
    ("create_run", lambda s, r: s.create_run({"model": "default", "variants": []}), "launch a run"),
    ("delete_run", lambda s, r: s.delete_run(r), "delete a run"),
    ("insert_run", lambda s, r: s.insert_run({"id": "x"}, [], {}, None, {}), "import a run"),
    ("fail_run", lambda s, r: s.fail_run(r, "stopped"), "stop a run"),
    ("set_run_status", lambda s, r: s.set_run_status(r, "done"), "record run progress"),
    ("set_run_stage", lambda s, r: s.set_run_stage(r, "x"), "record run progress"),
    ("set_run_env", lambda s, r: s.set_run_env(r, {}), "record run progress"),
    ("set_run_pid", lambda s, r: s.set_run_pid(r, 1), "record run progress"),
    ("upsert_variant", lambda s, r: s.upsert_variant(r, 0, status="done"), "record run progress"),
    ("add_variant_note", lambda s, r: s.add_variant_note(r, 0, "a new note"), "record run progress"),
    ("append_timeline", lambda s, r: s.append_timeline(r, 0, [(0.0, 1.0)]), "record run progress"),
    ("set_examples", lambda s, r: s.set_examples(r, ["t"], [0], ["a"]), "record run progress"),
    ("set_predictions", lambda s, r: s.set_predictions(r, 0, [0], [[1.0]]), "record run progress"),
    ("dismiss_recovery_notice", lambda s, r: s.dismiss_recovery_notice(), "dismiss the store recovery notice"),
]


@pytest.mark.parametrize(("name", "write", "action"), STORE_WRITES, ids=[w[0] for w in STORE_WRITES])
def test_read_only_store_refuses_every_write(shared_store, name, write, action):
    store, done, _ = shared_store
    before = _dump(store)
    with pytest.raises(ReadOnlyError, match=f"cannot {action}: this installation is read-only"):
        write(store, done)
    assert store.reap_dead_runs() == 0  # reaping writes nothing either: the dead run stays as stored
    assert _dump(store) == before


def test_read_only_cli_refuses_to_launch_delete_import_or_sweep(shared_store, tmp_path, capsys, monkeypatch):
    from profiling.cli import main
    from profiling.store.bundle import export_bytes

    store, done, queued = shared_store
    monkeypatch.delenv("COMPRESSION_READ_ONLY")
    bundle = tmp_path / "b.zip"
    bundle.write_bytes(export_bytes(store, done))
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    before = _dump(store)
    at = ["--store", str(store.path)]
    for argv, said in ((["run", "--preset", "quick", *at], "cannot launch a run"),
                       (["delete", done, *at], "cannot delete a run"),
                       (["import", str(bundle), *at], "cannot import a run"),
                       (["sweep", done, *at], "cannot run a sweep"),
                       (["execute", queued, *at], "read-only")):
        assert main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    assert _dump(store) == before


# ---- model roots in the Run page's folder picker ---------------------------------------------------------


def _folder_picker(open_page, folder: str) -> AppTest:
    at = open_page()
    at.radio(key="model_source").set_value("Local folder").run()
    at.text_input(key="model_path").input(folder).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("folder", ["/etc", "/etc/ssh", "{root}/../private", "{root}/escape", "/no/such/folder"])
def test_run_page_refuses_folders_outside_the_roots(open_page, store, tmp_path, monkeypatch, folder):
    root = tmp_path / "models"
    (root / "clf").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "config.json").write_text("{}")
    (root / "escape").symlink_to(tmp_path / "private", target_is_directory=True)
    monkeypatch.setenv("COMPRESSION_MODEL_ROOTS", str(root))
    at = _folder_picker(open_page, folder.format(root=root))
    errors = [e.value for e in at.error]
    assert any("is not allowed: only folders under " + str(root.resolve()) in e for e in errors), errors
    assert not any("No folder at" in e or "config.json" in e for e in errors)  # nothing said about what is there
    assert f"only folders under {root.resolve()} are accepted" in _texts(at)
    assert at.button(key="launch").disabled


def test_run_page_accepts_a_folder_under_a_root(open_page, store, tmp_path, monkeypatch):
    root = tmp_path / "models"
    folder = root / "clf"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    monkeypatch.setenv("COMPRESSION_MODEL_ROOTS", str(root))
    at = _folder_picker(open_page, str(folder))
    assert not [e.value for e in at.error if "not allowed" in e.value]


def test_run_page_folder_picker_is_unchanged_without_roots(open_page, store, monkeypatch):
    monkeypatch.delenv("COMPRESSION_MODEL_ROOTS", raising=False)
    at = _folder_picker(open_page, "/no/such/folder")
    assert "No folder at /no/such/folder." in [e.value for e in at.error]
    assert "are accepted" not in _texts(at)


# ---- login (st.login with an [auth] section) -------------------------------------------------------------


def _auth_app(user: dict, secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets.update(AUTH if secrets is None else secrets)
    at.user = dict(user)
    return at


def _only_the_login_prompt(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Compression Explorer"]
    assert [b.key for b in at.button] == ["auth_login_default"]
    assert not at.dataframe and not at.selectbox and not at.radio and not at.text_input
    assert "log in to see it" in _texts(at)


def test_with_auth_a_visitor_sees_only_the_login_prompt(store, app_env):
    build_fake_run(store)
    at = _auth_app({"is_logged_in": False})
    at.query_params.update({"run": "x", "view": "shared"})
    at.run()
    _only_the_login_prompt(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/results.py")  # no page is registered before login


@pytest.mark.parametrize("page", ["pages/run.py", "pages/results.py", "pages/history.py", "pages/sensitivity.py",
                                  "pages/demo.py"])
def test_with_auth_every_page_needs_the_login_and_logout_locks_it_again(store, app_env, page):
    build_fake_run(store)
    at = _auth_app({"is_logged_in": True, "name": "Ada", "email": "ada@example.com"})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Signed in as Ada" in [c.value for c in at.sidebar.caption]
    assert not [b for b in at.button if str(b.key).startswith("auth_login")]  # the page itself
    at.user = {"is_logged_in": False}  # the same session, the identity cookie gone (expired, logged out elsewhere)
    at.run()
    _only_the_login_prompt(at)


def test_logout_button_logs_out(store, app_env):
    at = _auth_app({"is_logged_in": True, "email": "ada@example.com"})
    at.run()
    assert "Signed in as ada@example.com" in [c.value for c in at.sidebar.caption]
    at.button(key="auth_logout").click().run()
    _only_the_login_prompt(at)


def test_login_button_calls_st_login_with_the_provider(store, app_env, monkeypatch):
    import streamlit as st

    calls: list[tuple] = []
    monkeypatch.setattr(st, "login", lambda *a: calls.append(a))
    at = _auth_app({"is_logged_in": False})
    at.run()
    at.button(key="auth_login_default").click().run()
    assert calls == [()]
    secrets = {"auth": {**{k: v for k, v in AUTH["auth"].items() if k in ("redirect_uri", "cookie_secret")},
                        "google": {"client_id": "g"}, "okta": {"client_id": "o"}}}
    at = _auth_app({"is_logged_in": False}, secrets)
    at.run()
    assert [b.label for b in at.button] == ["Log in with google", "Log in with okta"]
    at.button(key="auth_login_okta").click().run()
    assert calls[-1] == ("okta",)


def test_login_without_authlib_says_what_to_install(store, app_env, monkeypatch):
    from streamlit import auth_util

    monkeypatch.setattr(auth_util, "is_authlib_installed", lambda: False)
    from streamlit import user_info

    monkeypatch.setattr(user_info, "is_authlib_installed", lambda: False)
    at = _auth_app({"is_logged_in": False})
    at.run()
    at.button(key="auth_login_default").click().run()
    assert not at.exception
    assert any("Authlib" in e.value for e in at.error), [e.value for e in at.error]
    assert [b.key for b in at.button] == ["auth_login_default"]  # still locked


def test_without_auth_the_app_is_unchanged(store, app_env):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.button(key="launch") and "log in to see it" not in _texts(at)
    assert not [b for b in at.button if str(b.key).startswith("auth_")]
