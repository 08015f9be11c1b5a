"""Jobs on the pages (sweeps, sensitivity maps): launch one, follow it live from the store, stop it."""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from dashboard.guard import page_guard

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
BADGE = {"queued": ("queued", "gray"), "running": ("running", "blue"), "done": ("done", "green"),
         "failed": ("failed", "red")}
KIND_TEXT = {"sweep": "Sweep", "sensitivity": "Sensitivity map"}


def launch(kind: str, request: dict) -> str | None:
    """Start a job in its own process (returns at once with its id); a bad request is shown as an error, None."""
    from profiling.jobs import launcher
    from profiling.store.runs import StoreError

    try:
        return launcher.launch_job(kind, request)
    except (ValueError, StoreError) as exc:  # the user's input (UserError), read-only, an unusable store
        st.error(f"Cannot launch: {exc}", icon=":material/block:")
    return None


def stop(store: Any, job_id: str) -> None:
    """Ask the job's process to stop (it records why and exits); a queued job without a process is failed at once."""
    from profiling.jobs import launcher

    try:
        launcher.stop_job(job_id, store.path)
    except PermissionError as exc:
        st.session_state["job_stop_problem"] = f"Cannot stop job {job_id}: {exc}."


def job_panel(store: Any, job_id: str, locked: bool = False) -> dict | None:
    """The job's status, stage and progress, redrawn every second while it is queued or running (a full rerun
    once it finishes, so the page draws the result). Returns the job as first read (None: not in the store)."""
    job = store.get_job(job_id)
    if job is None:
        st.warning(f"Job {job_id} is no longer in the store (deleted?).")
        return None
    active = job["status"] in ACTIVE

    @st.fragment(run_every=1.0 if active else None)
    def live() -> None:
        with page_guard("the job's progress"):
            store.reap_dead_jobs()
            now = store.get_job(job_id)
            if now is None:
                st.warning(f"Job {job_id} was deleted.")
                return
            draw(store, now, locked)
            if active and now["status"] not in ACTIVE:
                st.rerun()

    live()
    return job


def draw(store: Any, job: dict, locked: bool = False) -> None:
    label, color = BADGE.get(job["status"], (job["status"], "gray"))
    head, badge = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**{KIND_TEXT.get(job['kind'], job['kind'])} {job['id']}**")
    badge.badge(label, color=color)
    if job["status"] in ACTIVE:
        frac = min(max(float(job.get("progress") or 0.0), 0.0), 1.0)
        st.progress(frac, text=f"{job.get('stage') or job['status']} ({frac:.0%})")
        st.caption("It runs in its own process: reloading or closing this tab does not stop it.")
        if not locked:
            with st.popover("Stop this job", icon=":material/stop_circle:"):
                st.button("Yes, stop it", key=f"stop_job_{job['id']}", type="primary", on_click=stop,
                          args=(store, job["id"]), help="Sends the job's process a termination signal.")
        if st.session_state.get("job_stop_problem"):
            st.warning(st.session_state.pop("job_stop_problem"))
    elif job["status"] == "failed":
        st.error(f"This job failed: {job.get('error') or 'no reason recorded'}", icon=":material/error:")
