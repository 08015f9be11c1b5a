"""AppTest: the Results page's "Log to MLflow" box (only with mlflow installed; hidden on share links)."""

from __future__ import annotations

import pytest

from tests.helpers.fake_runs import build_fake_run

pytest.importorskip("mlflow")


def _box_texts(at) -> str:
    return "\n".join(str(e.value) for e in [*at.success, *at.error, *at.caption])


def test_the_box_logs_the_run_and_says_where(store, open_page, app_env):
    from mlflow.tracking import MlflowClient

    run_id = build_fake_run(store)
    at = open_page("pages/results.py", {"run": run_id})
    uri_box = at.text_input(key=f"mlflow_uri_{run_id}")
    assert str(app_env / "mlflow") in uri_box.placeholder  # the default store, in the data folder
    at.button(key=f"mlflow_log_{run_id}").click().run()
    assert not at.exception
    done = [s.value for s in at.success if "Logged as MLflow run" in s.value]
    assert done, _box_texts(at)
    uri = (app_env / "mlflow").resolve().as_uri()
    assert uri in done[0] and "3 child runs" in done[0]
    client = MlflowClient(tracking_uri=uri)
    parent = client.search_runs([client.get_experiment_by_name("compression-explorer").experiment_id],
                                filter_string=f"tags.`compression.run_id` = '{run_id}'")
    assert len(parent) == 1 and parent[0].info.run_id in done[0]


def test_an_unreachable_tracking_uri_is_said_in_the_box(store, open_page, app_env):
    from tests.browser.conftest import free_port

    run_id = build_fake_run(store)
    at = open_page("pages/results.py", {"run": run_id})
    uri = f"http://127.0.0.1:{free_port()}"
    at.text_input(key=f"mlflow_uri_{run_id}").input(uri)
    at.button(key=f"mlflow_log_{run_id}").click().run()
    assert not at.exception
    errors = [e.value for e in at.error if "Not logged" in e.value]
    assert errors and f"{uri} cannot be reached" in errors[0]


def test_no_box_without_mlflow_or_on_a_share_link(store, open_page, monkeypatch):
    run_id = build_fake_run(store)
    at = open_page("pages/results.py", {"run": run_id, "view": "shared"})
    assert not [b for b in at.button if (b.key or "").startswith("mlflow_log_")]
    from profiling.report import mlflow_export

    monkeypatch.setattr(mlflow_export, "available", lambda: False)
    at = open_page("pages/results.py", {"run": run_id})
    assert not at.exception
    assert not [b for b in at.button if (b.key or "").startswith("mlflow_log_")]
    assert "Share and export" in [h.value for h in at.subheader]  # the rest of the section is there
