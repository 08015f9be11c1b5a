"""History page: every stored run and job (sweeps, sensitivity maps); open one, compare two runs side by side,
stop or delete one (with confirmation)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import jobs, queue_view, share, state
from dashboard.guard import page_guard
from dashboard.run_view import show_results_table

log = logging.getLogger(__name__)

STATUS_TEXT = {"queued": "queued", "running": "running", "done": "done", "failed": "failed"}
ACTIVE = ("queued", "running")


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run for the overview table (newest first)."""
    rows = []
    for r in runs:
        status = STATUS_TEXT.get(r["status"], r["status"])
        if r["status"] in ACTIVE and r.get("stage"):
            status += f" ({r['stage']})"
        rows.append(
            {
                "Open": f"results?run={r['id']}",
                "Date": str(r.get("created_at") or "").replace("T", " ")[:16],
                "Status": status,
                "Model": r.get("model", "?"),
                "Dataset": r.get("dataset", "?"),
                "Variants": f"{r.get('n_done', 0)}/{r.get('n_variants', 0)}",
                "Techniques": ", ".join(r.get("techniques") or []) or "original only",
                "Reason": r.get("error") or "",
                "Run": r["id"],
            }
        )
    return pd.DataFrame(
        rows, columns=["Open", "Date", "Status", "Model", "Dataset", "Variants", "Techniques", "Reason", "Run"]
    )


def run_label(runs: dict[str, dict], run_id: str) -> str:
    r = runs.get(run_id)
    if r is None:
        return run_id
    date = str(r.get("created_at") or "").replace("T", " ")[:16]
    return f"{date} · {r.get('model', '?')} · {r.get('dataset', '?')} · {r['status']} · {run_id}"


def compare_frame(store: Any, run_ids: list[str], labels: dict[str, str]) -> pd.DataFrame:
    """Numeric figures of every variant of the given runs, with a ``run`` column (for the combined chart)."""
    from profiling.report.frames import metrics_frame

    parts = []
    for rid in run_ids:
        df = metrics_frame(store.variants(rid))
        if df.empty:
            continue
        df = df.assign(run=labels[rid])
        parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def compare_figure(df: pd.DataFrame) -> Any:
    """Latency (batch 1, median) against accuracy for the variants of two runs, one colour and symbol per run."""
    import plotly.graph_objects as go

    fig = go.Figure()
    symbols = ("circle", "diamond")
    for i, (run, part) in enumerate(df.groupby("run", sort=False)):
        part = part.dropna(subset=["latency_b1_median_ms", "accuracy"])
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["latency_b1_median_ms"],
                y=part["accuracy"],
                mode="markers+text",
                name=str(run),
                text=part["variant"],
                textposition="top center",
                marker={"size": 12, "symbol": symbols[i % 2]},
                hovertemplate="<b>%{text}</b><br>latency %{x:.1f} ms<br>accuracy %{y:.3f}<extra>"
                + str(run)[:40]
                + "</extra>",
            )
        )
    if not fig.data:
        fig.add_annotation(
            text="No finished variants with latency and accuracy yet",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    fig.update_layout(
        title="Latency vs accuracy, both runs",
        xaxis_title="Latency batch 1, median (ms)",
        yaxis_title="Accuracy",
        height=440,
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def delete_section(store: Any, runs: dict[str, dict]) -> None:
    st.markdown("#### Delete a run")
    target = st.selectbox(
        "Run to delete",
        list(runs),
        index=None,
        key="delete_run",
        format_func=lambda rid: run_label(runs, rid),
        placeholder="Choose a run",
        help="Deletes this run's figures, timelines and predictions from the store. Other runs "
        "and cached model files are not touched.",
    )
    if target is None:
        return
    if runs[target]["status"] in ACTIVE:
        st.info("This run is still in progress; it can be deleted once it has finished.")
        return
    sure = st.checkbox(
        f"Yes, delete run {target} for good", key=f"delete_confirm_{target}", help="Deleting cannot be undone."
    )
    if st.button(
        "Delete run",
        type="primary",
        icon=":material/delete:",
        key="delete_button",
        disabled=not sure,
        help="Tick the confirmation box first.",
    ):
        store.delete_run(target)
        if st.session_state.get("run_id") == target:
            st.session_state.pop("run_id", None)
        st.session_state.pop("delete_run", None)
        st.session_state["deleted"] = target
        st.rerun()


def compare_section(store: Any, runs: dict[str, dict]) -> None:
    st.markdown("#### Compare two runs")
    chosen = st.multiselect(
        "Runs to compare",
        list(runs),
        max_selections=2,
        key="compare_runs",
        format_func=lambda rid: run_label(runs, rid),
        placeholder="Choose two runs",
        help="Shows both runs' results tables side by side and one chart with the variants of "
        "both (latency against accuracy).",
    )
    if len(chosen) < 2:
        st.caption("Choose two runs to see them side by side.")
        return
    cols = st.columns(2)
    for col, rid in zip(cols, chosen, strict=True):
        with col:
            r = runs[rid]
            st.markdown(f"**{r.get('model', '?')} · {r.get('dataset', '?')}**  \n:gray[{rid} · {r['status']}]")
            if r.get("error"):
                st.error(r["error"])
            show_results_table(store, rid)
            st.page_link("pages/results.py", label="Open", icon=":material/insights:", query_params={"run": rid})
    labels = {rid: f"{runs[rid].get('model', '?')} · {runs[rid].get('dataset', '?')} ({rid})" for rid in chosen}
    st.plotly_chart(compare_figure(compare_frame(store, chosen, labels)), config={"displaylogo": False})


def main() -> None:
    st.title("History")
    store = state.get_store()
    store.reap_dead_runs()
    queue_view.render(store)
    deleted = st.session_state.pop("deleted", None)
    if deleted:
        st.success(f"Run {deleted} deleted.", icon=":material/delete:")
    runs_list = store.list_runs()
    if not runs_list:
        if share.locked():
            st.info("No runs in this read-only dashboard yet.")
            jobs.history_section(store, locked=True)
            return
        st.info("No runs yet. Launch one on the Run page, or import a run bundle below.")
        st.page_link("pages/run.py", label="Go to the Run page", icon=":material/play_circle:")
        jobs.history_section(store, locked=False)
        share.render_import(store)
        return
    runs = {r["id"]: r for r in runs_list}
    st.caption(f"{len(runs)} stored run(s), newest first. Click **Open** to see a run's full results.")
    st.dataframe(
        runs_frame(runs_list),
        hide_index=True,
        column_config={
            "Open": st.column_config.LinkColumn(
                "Open", display_text="Open", help="Open this run's results", width="small"
            ),
            "Variants": st.column_config.TextColumn("Variants", help="Variants measured / planned", width="small"),
            "Techniques": st.column_config.TextColumn("Techniques", width="medium"),
            "Reason": st.column_config.TextColumn("Reason", help="Why a run failed", width="medium"),
            "Run": st.column_config.TextColumn("Run id", width="small"),
        },
    )
    st.markdown("#### Open a run")
    pick = st.selectbox(
        "Run",
        list(runs),
        key="open_run",
        format_func=lambda rid: run_label(runs, rid),
        help="Pick a run to open its results page (tradeoff plots, memory timelines, confusion "
        "matrices and changed predictions).",
    )
    st.page_link(
        "pages/results.py", label=f"Open the results of {pick}", icon=":material/insights:", query_params={"run": pick}
    )
    st.divider()
    jobs.history_section(store, locked=share.locked())
    st.divider()
    compare_section(store, runs)
    st.divider()
    share.render_import(store)
    if not share.locked():  # read-only mode: no deleting
        delete_section(store, runs)


with page_guard("the History page"):
    main()
