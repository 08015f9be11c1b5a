"""The Results page's "Log to MLflow" box: shown only when mlflow is installed, for a finished run."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import share

RESULT_KEY = "mlflow_logged"


def _log(store: Any, run_id: str, uri_key: str, exp_key: str) -> None:
    """Button callback: log the run and keep the outcome for the box to show."""
    from profiling.report.mlflow_export import MlflowExportError, log_run

    try:
        logged = log_run(store, run_id, st.session_state.get(uri_key), st.session_state.get(exp_key))
    except MlflowExportError as exc:
        st.session_state[RESULT_KEY] = {"run": run_id, "error": str(exc)}
        return
    st.session_state[RESULT_KEY] = {"run": run_id, "parent": logged.parent_run_id,
                                    "children": len(logged.child_run_ids), "experiment": logged.experiment_name,
                                    "experiment_id": logged.experiment_id, "uri": logged.tracking_uri}


def render(store: Any, run: dict) -> None:
    """The box under "Share and export"; nothing at all without mlflow, on a share link or a read-only app (a
    tracking URI may name any folder the server can write)."""
    from profiling.report.mlflow_export import available, default_tracking_uri

    if not available() or share.locked():
        return
    run_id = run["id"]
    finished = run.get("status") in ("done", "failed")
    with st.container(border=True, key="mlflow_box"):
        st.markdown("**Log to MLflow**")
        st.caption("One parent MLflow run with the environment, the HTML report and the run bundle, and a child run "
                   "per variant with its chain as parameters and its figures as metrics.")
        uri_key, exp_key = f"mlflow_uri_{run_id}", f"mlflow_experiment_{run_id}"
        c1, c2 = st.columns([3, 2])
        c1.text_input("Tracking URI", key=uri_key, placeholder=default_tracking_uri(),
                      help="Where to log: an MLflow server (http://host:5000), a folder, or empty for the local "
                      "file store in the data folder (shown greyed in the box).")
        c2.text_input("Experiment", key=exp_key, placeholder="compression-explorer",
                      help="The MLflow experiment to log into (created when it does not exist).")
        st.button("Log to MLflow", key=f"mlflow_log_{run_id}", icon=":material/cloud_upload:", disabled=not finished,
                  on_click=_log, args=(store, run_id, uri_key, exp_key),
                  help="Each click logs a new parent run; the run store is only read.")
        if not finished:
            st.caption("Available once the run has finished.")
        result = st.session_state.get(RESULT_KEY)
        if not result or result.get("run") != run_id:
            return
        if result.get("error"):
            st.error(f"Not logged: {result['error']}", icon=":material/error:")
            return
        st.success(f"Logged as MLflow run `{result['parent']}` with {result['children']} child runs, experiment "
                   f"**{result['experiment']}** (id {result['experiment_id']}) at `{result['uri']}`.",
                   icon=":material/task_alt:")
