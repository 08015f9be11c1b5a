"""The default-classifier build on every page: a compact status box while it runs or after it failed.

The box refreshes itself (st.fragment with run_every) while the build runs and reruns the whole page when the
build's state changes, so the Run page's choices unlock by themselves. It says what can be done meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from profiling.jobs import defaults_build
from profiling.store.runs import READ_ONLY_ENV, read_only

log = logging.getLogger(__name__)

REFRESH_S = 2.0
MEANWHILE = ("Meanwhile you can launch runs on an **architecture preset** (random weights: size, memory and speed "
             "need no build), import a run bundle or browse past runs on **History**, and open the **Demo** page.")

SHARED_CPU = ("A run launched now shares the CPU with this build: its latency figures come out slower and noisier "
              "than on an otherwise idle machine (its intervals show it); re-run the ones that matter afterwards.")


def status() -> dict[str, Any]:
    """The build's state (profiling.jobs.defaults_build.read_status); a damaged status file never breaks a page."""
    try:
        return defaults_build.read_status()
    except Exception:
        log.exception("could not read the default-classifier build status")
        return {"state": "unknown", "ready": {}}


def status_box() -> None:
    """Draw the box (nothing once everything is built); call once per page run, from app.py."""
    first = status()
    if first["state"] in ("done", "unknown"):
        if st.session_state.pop("build_was_running", False):
            st.toast("The default classifiers are ready.", icon=":material/task_alt:")
        return
    st.session_state["build_was_running"] = first["state"] == "running"

    @st.fragment(run_every=REFRESH_S if first["state"] == "running" else None)
    def box() -> None:
        now = status()
        if now["state"] != first["state"]:
            st.rerun()  # finished or failed: the whole page redraws (the Run page's choices unlock)
        draw(now)

    box()


def draw(s: dict[str, Any]) -> None:
    with st.container(border=True, key="build_status"):
        if s["state"] == "running":
            draw_running(s)
        elif s["state"] == "failed":
            draw_failed(s)
        else:
            draw_missing(s)


def draw_running(s: dict[str, Any]) -> None:
    frac = min(max(float(s.get("fraction") or 0.0), 0.0), 1.0)
    st.markdown(":material/construction: **Building the default classifiers** (once; cached in the data folder)")
    eta = s.get("eta_s")
    when = f" · about {_duration(eta)} left" if isinstance(eta, (int, float)) else ""
    st.progress(frac, text=f"{frac:.0%} · {s.get('stage') or 'starting'}{when}")
    st.caption(f"{_ready_text(s.get('ready') or {})} {MEANWHILE} {SHARED_CPU}")
    if s.get("log"):
        with st.expander("Build log"):
            st.code("\n".join(s["log"]), language=None)


def draw_failed(s: dict[str, Any]) -> None:
    st.error(f"Building the default classifiers failed: {s.get('error') or 'no reason recorded'}",
             icon=":material/error:")
    if s.get("log"):
        with st.expander("Build log"):
            st.code("\n".join(s["log"]), language=None)
    st.caption(f"{_ready_text(s.get('ready') or {})} {MEANWHILE} A run on a default classifier that is not built "
               "builds it first.")
    retry_button("Retry the build", "build_retry")


def draw_missing(s: dict[str, Any]) -> None:
    st.info("The default classifiers are not built yet (`make run` starts that build; it runs once and is cached).",
            icon=":material/info:")
    st.caption(f"{_ready_text(s.get('ready') or {})} {MEANWHILE} A run on a default classifier that is not built "
               "builds it first.")
    retry_button("Build them now", "build_start")


def retry_button(label: str, key: str) -> None:
    ro = read_only()
    clicked = st.button(label, key=key, icon=":material/refresh:", disabled=ro,
                        help=f"Not available: this installation is read-only ({READ_ONLY_ENV} is set)." if ro else
                        "Starts the build again as a background process (python -m profiling setup); this box "
                        "follows it. Parts already built are kept.")
    if clicked:
        start()


def start() -> None:
    from profiling.store.runs import ReadOnlyError

    try:
        result = defaults_build.start_background()
    except ReadOnlyError as exc:
        st.error(f"Cannot build: {exc}", icon=":material/block:")
        return
    except OSError as exc:
        st.error(f"Could not start the build: {exc}", icon=":material/error:")
        return
    log.info("build requested from the dashboard: %s", result["why"])
    st.rerun()


def _ready_text(ready: dict[str, dict[str, bool]]) -> str:
    done = [name for name, r in ready.items() if r.get("model") and r.get("dataset")]
    if not done:
        return "No default classifier is ready yet."
    return f"Ready already: the default classifier for {', '.join(done)}."


def _duration(seconds: float) -> str:
    secs = max(0, round(seconds))
    return f"{secs // 60} min {secs % 60:02d} s" if secs >= 60 else f"{secs} s"
