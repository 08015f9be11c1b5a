"""Run page: choose a model, data and techniques, launch a background run, and watch it live (reattaches on reload)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import (
    cluster,
    hardware,
    live,
    pickers,
    queue_view,
    ram_view,
    run_choices,
    state,
    sweep,
    technique_picker,
)
from dashboard.guard import page_guard
from profiling.schema import RunStatus

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
BUSY = ("building", "profiling")
STATUS_ICON = {
    "pending": ":gray[:material/schedule:]",
    "building": ":orange[:material/construction:]",
    "profiling": ":blue[:material/monitoring:]",
    "done": ":green[:material/check_circle:]",
    "failed": ":red[:material/cancel:]",
}
RUN_BADGE = {
    "queued": ("queued", "gray"),
    "running": ("running", "blue"),
    "done": ("done", "green"),
    "failed": ("failed", "red"),
}


def attached_run_id(store: Any) -> str | None:
    """The run this page shows: ?run=<id>, else this session's last launch, else any active run in the store."""
    store.reap_dead_runs()
    for candidate in (st.query_params.get("run"), st.session_state.get("run_id")):
        if candidate and candidate != st.session_state.get("detached") and store.get_run(candidate):
            return candidate
    active = [r for r in store.list_runs() if r["status"] in ACTIVE]
    return active[-1]["id"] if active else None  # the oldest active run is the one the machine works on


def detach(request: dict | None = None) -> None:
    """Leave the watched (finished) run and show the set-up form again, starting from that run's request."""
    run_choices.load_request(request)
    st.session_state["detached"] = st.session_state.pop("run_id", None) or st.query_params.get("run")
    st.query_params.pop("run", None)


# ---- live view ---------------------------------------------------------------------------------------------


LIVE_REFRESH_S = 1.0  # a measuring run: its progress bars and memory timeline move every second
QUEUED_CHECK_S = 3.0  # a queued run shows nothing new until it starts: the page only checks for a change


def run_panel(run_id: str) -> None:
    """The run as it stands. A measuring run redraws itself every LIVE_REFRESH_S; a queued one is drawn once and
    the page reruns when it starts (or anything it shows changes); a finished one is drawn once."""
    store = state.get_store()
    snap = live.run_snapshot(store, run_id)
    if snap is None:
        st.warning(f"Run {run_id} is no longer in the store (deleted?).")
        return
    if snap["run"]["status"] != RunStatus.RUNNING:
        draw_run(store, snap)
        if snap["run"]["status"] in ACTIVE:
            live.watch_run(store, run_id, live.change_token(snap), QUEUED_CHECK_S)
        return

    @st.fragment(run_every=LIVE_REFRESH_S)
    def measuring() -> None:
        with page_guard("the run's progress"):
            now = live.run_snapshot(store, run_id)
            if now is None:
                st.warning(f"Run {run_id} was deleted.")
                return
            draw_run(store, now)
            if now["run"]["status"] != RunStatus.RUNNING:
                st.rerun()  # a full rerun redraws the page without the timer and with the results link

    measuring()


def draw_run(store: Any, snap: dict) -> None:
    run, variants = snap["run"], snap["variants"]
    run_id = run["id"]
    req = run.get("request") or {}
    label, color = RUN_BADGE.get(run["status"], (run["status"], "gray"))
    head, badge = st.columns([5, 1], vertical_alignment="center")
    head.subheader(f"Run {run_id}")
    badge.badge(label, color=color)
    st.caption(
        f"Model **{req.get('model', '?')}** · dataset **{_dataset_name(req.get('dataset'))}** · "
        f"{_elapsed(run)}" + (f" · now: {run['stage']}" if run.get("stage") and run["status"] in ACTIVE else "")
    )
    if run["status"] == "failed":
        st.error(f"This run failed: {run.get('error') or 'no reason recorded'}", icon=":material/error:")
    if run["status"] in ACTIVE and run.get("stage") and not any(v["status"] in BUSY for v in variants):
        st.info(f"Now: {run['stage']}", icon=":material/hourglass_top:")  # e.g. building the default classifier
    progress_table(variants)

    figure = live.memory_figure(snap, store)
    if figure is not None:
        st.plotly_chart(figure, key=None, config={"displaylogo": False})
    elif run["status"] in ACTIVE:
        st.caption("The memory timeline appears as soon as the first variant is being profiled.")

    if variants:
        st.markdown("**Results so far**" if run["status"] in ACTIVE else "**Results**")
        table, fmt = live.results_table(snap, store)
        st.dataframe(table, hide_index=True, column_config=fmt)
    if run["status"] == "done":
        st.success(
            f"Finished: {sum(v['status'] == 'done' for v in variants)} of {len(variants)} variants measured.",
            icon=":material/task_alt:",
        )
    if run["status"] in ACTIVE:
        with st.popover("Stop this run", icon=":material/stop_circle:"):
            st.caption("The variants measured so far stay in the store; the run is marked failed ('stopped').")
            st.button(
                "Yes, stop it",
                key=f"stop_{run_id}",
                type="primary",
                on_click=stop_run,
                args=(store, run_id),
                help="Sends the run's background process a termination signal; it records why and exits.",
            )
        if st.session_state.get("stop_problem"):
            st.warning(st.session_state.pop("stop_problem"))
    if run["status"] in ("done", "failed"):
        st.page_link(
            "pages/results.py",
            label="Open the full results (tradeoffs, confusion matrices, changes)",
            icon=":material/insights:",
            query_params={"run": run_id},
        )


def stop_run(store: Any, run_id: str) -> None:
    """Ask the run's process to stop (profiling.jobs.runner.stop: SIGTERM only to a process whose command line
    names the run, so a reused pid is never signalled; a queued run with no process yet is marked failed)."""
    from profiling.jobs import runner

    try:
        if runner.stop(run_id, store.path):
            log.info("stop requested for run %s", run_id)
    except PermissionError:
        run = store.get_run(run_id) or {}
        st.session_state["stop_problem"] = f"Not allowed to stop process {run.get('pid')} of run {run_id}."


def progress_table(variants: list[dict]) -> None:
    """One line per variant: status, current stage, progress bar, error or notes."""
    for v in variants:
        c1, c2, c3 = st.columns([3, 2, 4], vertical_alignment="center")
        c1.markdown(f"{STATUS_ICON.get(v['status'], '•')} **{v['name']}**")
        stage = v.get("stage") or v["status"]
        c2.caption(stage if v["status"] not in ("done", "pending") else v["status"].replace("pending", "waiting"))
        frac = 1.0 if v["status"] == "done" else min(max(float(v.get("progress") or 0.0), 0.0), 1.0)
        if v["status"] == "failed":
            c3.markdown(f":red[failed: {v.get('error') or 'no reason recorded'}]")
        else:
            c3.progress(frac, text=f"{frac:.0%}")


def _dataset_name(spec: Any) -> str:
    if isinstance(spec, dict):
        if spec.get("kind") == "csv":
            return (
                f"{str(spec.get('path', '?')).rsplit('/', 1)[-1]} ({spec.get('text_column')} → "
                f"{spec.get('label_column')})"
            )
        return str(spec.get("name", "?"))
    return str(spec or "?")


def _elapsed(run: dict) -> str:
    try:
        start = datetime.fromisoformat(str(run["created_at"]))
        end = datetime.fromisoformat(str(run["finished_at"])) if run.get("finished_at") else datetime.now(UTC)
        secs = max(0, int((end - start).total_seconds()))
    except (KeyError, TypeError, ValueError):
        return f"started {run.get('created_at', '?')}"
    text = f"{secs // 60} min {secs % 60:02d} s" if secs >= 60 else f"{secs} s"
    return ("took " if run.get("finished_at") else "running for ") + text


# ---- set-up form -------------------------------------------------------------------------------------------


def setup_form() -> None:
    run_choices.restore()  # the choices made before another page or a reload (session, else ?setup=)
    run_choices.notice()
    st.markdown("#### 1 · Model")
    model, model_errors = pickers.model_picker()
    st.markdown("#### 2 · Labeled data")
    dataset, data_errors = pickers.dataset_picker()
    data_errors = data_errors + pickers.default_classifier_problem(model, dataset)
    finetune_mode = pickers.finetune_picker(model, dataset)
    st.markdown("#### 3 · Techniques")
    hardware.render()  # this CPU's instruction sets; the picker warns under techniques it cannot speed up
    variants, tech_errors = technique_picker.technique_picker(model)
    technique_picker.extra_variants_editor()
    st.markdown("#### 4 · Measurement")
    settings = pickers.settings_picker()
    workloads = sweep.workloads_picker(settings["batch_size"])
    executor, cluster_errors = cluster.cluster_picker()
    run_choices.remember()

    st.divider()
    errors = model_errors + data_errors + tech_errors + cluster_errors
    n = len(variants)
    st.markdown(f"**{n} variant{'s' if n != 1 else ''} to measure:** " + ", ".join(v["name"] for v in variants))
    if n == 1:
        st.caption("Only the original model is ticked: tick techniques above to compare them with it.")
    ram_view.render(model, variants)
    if errors:
        st.caption(f"Launch is available once the {len(errors)} problem(s) marked above are fixed.")
    clicked = st.button(
        "Launch",
        type="primary",
        icon=":material/rocket_launch:",
        key="launch",
        disabled=bool(errors),
        help="Starts the run in a background process: it keeps going if you reload, open another "
        "tab or close the browser. This page follows it live.",
    )
    if clicked:
        launch({"model": model, "dataset": dataset, "variants": variants, "settings": settings,
                **({"workloads": workloads} if workloads else {}), **executor,
                **({"finetune": finetune_mode} if finetune_mode else {})})


def launch(request: dict) -> None:
    from profiling.jobs import runner
    try:
        runner.validate_request(request)
    except ValueError as exc:  # RequestError and friends: the user's input
        st.error(f"Cannot launch: {exc}", icon=":material/block:")
        return
    try:
        run_id = runner.launch(request)
    except ValueError as exc:
        st.error(f"Cannot launch: {exc}", icon=":material/block:")
        return
    st.session_state["run_id"] = run_id
    st.session_state.pop("detached", None)
    st.query_params["run"] = run_id
    st.rerun()


# ---- page ------------------------------------------------------------------------------------------------


def main() -> None:
    st.title("Compression Explorer")
    st.caption(
        "What does each compression technique do to disk size, RAM, load time, latency and predictions of "
        "a transformer text classifier on this CPU? Pick a model, data and techniques, then launch."
    )
    store = state.get_store()
    queue_view.render(store)
    if st.session_state.get("launch"):  # a Launch click, handled even if another session's run began meanwhile
        setup_form()
        return
    run_id = attached_run_id(store)
    run = store.get_run(run_id) if run_id else None
    if run is not None:
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id  # a reload keeps following this run
        st.session_state["run_id"] = run_id
        run_panel(run_id)
        if run["status"] not in ACTIVE:
            st.button(
                "Set up a new run",
                icon=":material/add:",
                key="new_run",
                on_click=detach,
                args=(run.get("request"),),
                help="Leave this finished run (it stays in History) and show the set-up form, filled in with this "
                "run's model, data, techniques and settings.",
            )
            return
        st.caption(
            "One run at a time, so measurements do not disturb each other: the set-up form comes back "
            "when this run finishes. Reloading or closing this tab does not stop it."
        )
        return
    setup_form()


with page_guard("the Run page"):
    main()
