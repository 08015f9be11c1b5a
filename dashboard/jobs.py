"""Jobs on the pages (sweeps, sensitivity maps): launch one, follow it live from the store, stop it."""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from dashboard.guard import page_guard
from profiling.schema import ACTIVE_STATUSES, RunStatus

log = logging.getLogger(__name__)

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
    active = job["status"] in ACTIVE_STATUSES

    @st.fragment(run_every=1.0 if active else None)
    def live() -> None:
        with page_guard("the job's progress"):
            store.reap_dead_jobs()
            now = store.get_job(job_id)
            if now is None:
                st.warning(f"Job {job_id} was deleted.")
                return
            draw(store, now, locked)
            if active and now["status"] not in ACTIVE_STATUSES:
                st.rerun()

    live()
    return job


def draw(store: Any, job: dict, locked: bool = False) -> None:
    label, color = BADGE.get(job["status"], (job["status"], "gray"))
    head, badge = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**{KIND_TEXT.get(job['kind'], job['kind'])} {job['id']}**")
    badge.badge(label, color=color)
    if job["status"] in ACTIVE_STATUSES:
        frac = min(max(float(job.get("progress") or 0.0), 0.0), 1.0)
        st.progress(frac, text=f"{job.get('stage') or job['status']} ({frac:.0%})")
        st.caption("It runs in its own process: reloading or closing this tab does not stop it.")
        if not locked:
            with st.popover("Stop this job", icon=":material/stop_circle:"):
                st.button("Yes, stop it", key=f"stop_job_{job['id']}", type="primary", on_click=stop,
                          args=(store, job["id"]), help="Sends the job's process a termination signal.")
        if st.session_state.get("job_stop_problem"):
            st.warning(st.session_state.pop("job_stop_problem"))
    elif job["status"] == RunStatus.FAILED:
        st.error(f"This job failed: {job.get('error') or 'no reason recorded'}", icon=":material/error:")


# ---- History -----------------------------------------------------------------------------------------------


def _open_link(job: dict) -> str | None:
    from profiling.store.runs import read_only

    if job["kind"] == "sensitivity":
        return None if read_only() else f"sensitivity?job={job['id']}"  # the page is not served read-only
    return f"results?run={job['run_id']}" if job.get("run_id") else None


def _target(job: dict) -> str:
    req = job.get("request") or {}
    if job["kind"] == "sweep":
        spec = req.get("spec") or {}
        grid = " x ".join(",".join(map(str, spec.get(k) or [])) for k in ("batch_sizes", "seq_lens", "threads"))
        return (f"run {job['run_id']}" if job.get("run_id") else "artifact folders") + (f" · {grid}" if grid else "")
    return f"{req.get('technique', '?')} · {req.get('model', '?')}"


def jobs_frame(jobs: list[dict]) -> Any:
    """One row per job for the History table (newest first)."""
    import pandas as pd

    rows = []
    for j in jobs:
        status = j["status"] + (f" ({j['stage']})" if j["status"] in ACTIVE_STATUSES and j.get("stage") else "")
        rows.append({"Open": _open_link(j), "Date": str(j.get("created_at") or "").replace("T", " ")[:16],
                     "Kind": KIND_TEXT.get(j["kind"], j["kind"]), "Status": status, "Of": _target(j),
                     "Reason": j.get("error") or "", "Job": j["id"]})
    return pd.DataFrame(rows, columns=["Open", "Date", "Kind", "Status", "Of", "Reason", "Job"])


def history_section(store: Any, locked: bool) -> None:
    """The stored jobs next to the runs: a table with links, and (unless locked) stopping or deleting one."""
    from profiling.jobs.launcher import import_json_results

    import_json_results(store)  # result files of older versions show up here too
    store.reap_dead_jobs()
    all_jobs = store.list_jobs()
    st.markdown("#### Sweeps and sensitivity maps")
    deleted = st.session_state.pop("deleted_job", None)
    if deleted:
        st.success(f"Job {deleted} deleted.", icon=":material/delete:")
    if not all_jobs:
        st.caption("No sweep or sensitivity map stored yet (launch one on the Results or the Sensitivity page).")
        return
    st.dataframe(jobs_frame(all_jobs), hide_index=True, column_config={
        "Open": st.column_config.LinkColumn("Open", display_text="Open", help="Open where its result is drawn",
                                            width="small"),
        "Reason": st.column_config.TextColumn("Reason", help="Why a job failed", width="medium"),
        "Job": st.column_config.TextColumn("Job id", width="small"),
    })
    if locked:
        return
    by_id = {j["id"]: j for j in all_jobs}
    target = st.selectbox("Job to stop or delete", list(by_id), index=None, key="manage_job",
                          format_func=lambda i: f"{KIND_TEXT.get(by_id[i]['kind'])} · {by_id[i]['status']} · {i}",
                          placeholder="Choose a job")
    if target is None:
        return
    job = by_id[target]
    if job["status"] in ACTIVE_STATUSES:
        st.button("Stop this job", key=f"history_stop_{target}", icon=":material/stop_circle:", on_click=stop,
                  args=(store, target), help="Sends the job's process a termination signal; it records why and exits.")
        if st.session_state.get("job_stop_problem"):
            st.warning(st.session_state.pop("job_stop_problem"))
        return
    sure = st.checkbox(f"Yes, delete job {target} for good", key=f"delete_job_confirm_{target}",
                       help="Deleting cannot be undone.")
    if st.button("Delete job", type="primary", icon=":material/delete:", key="delete_job_button", disabled=not sure,
                 help="Tick the confirmation box first."):
        store.delete_job(target)
        st.session_state.pop("manage_job", None)
        st.session_state["deleted_job"] = target
        st.rerun()
