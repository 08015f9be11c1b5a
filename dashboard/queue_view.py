"""The measuring queue, as every session sees it: what measures now and each waiting run's or job's position."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.guard import page_guard

REFRESH_S = 2.0  # each tick reads a snapshot shared by every session (dashboard.live)
CONTAINER_KEY = "measuring_queue"  # the element's CSS class is st-key-measuring_queue


def lines(entries: list[dict[str, Any]], mine: str | None = None) -> list[str]:
    """One markdown line per queue entry (profiling.jobs.launcher.queue): "measuring now" or "position N", what it
    is, its stage; ``mine``: the run this session follows, marked."""
    out = []
    for e in entries:
        where = "measuring now" if e["position"] == 0 else f"position {e['position']}"
        what = "run" if e["kind"] == "run" else f"{e['kind']} job"
        stage = f" · {e['stage']}" if e.get("stage") else ""
        out.append(f"**{where}** · {what} `{e['id']}`{' (followed here)' if e['id'] == mine else ''}{stage}")
    return out


def render(store: Any) -> None:
    """The queue (nothing when nothing is queued or measuring), redrawn every REFRESH_S seconds by itself."""
    from dashboard.live import queue

    @st.fragment(run_every=REFRESH_S)
    def show() -> None:
        with page_guard("the measuring queue"):
            entries = queue(store)
            if not entries:
                return
            with st.container(key=CONTAINER_KEY, border=True):
                waiting = sum(e["position"] > 0 for e in entries)
                st.markdown(f"**Measuring queue** · one run measures at a time; {waiting} waiting, in launch order")
                for line in lines(entries, st.session_state.get("run_id")):
                    st.markdown(line)

    show()
