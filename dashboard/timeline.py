"""Where the run's time went: a timeline of the run, one horizontal stacked bar per variant (figure pure plotly)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from profiling.measure.timing import ORDER, SEGMENTS, SETUP, run_timeline
from profiling.schema import VariantStatus

# One colour per kind of work: building (orange), process start-up (greys), timing (blues), evaluation (green).
SEGMENT_COLORS: dict[str, str] = {
    SETUP: "#bbbbbb",
    "build": "#ff7f0e",
    "profiler set-up": "#e7e7e7",
    "child start": "#c7c7c7",
    "import": "#9e9e9e",
    "load": "#8c564b",
    "compile": "#e377c2",
    "first call": "#bcbd22",
    "warm-up": "#dbdb8d",
    "latency b1": "#1f77b4",
    "latency bN": "#6baed6",
    "workloads": "#17becf",
    "latency other": "#c6dbef",
    "latency": "#1f77b4",
    "evaluation": "#2ca02c",
    "exit": "#7f7f7f",
    "store": "#d9d9d9",
}


def timeline_figure(rows: Sequence[Mapping[str, Any]], title: str = "Where the time went") -> go.Figure:
    """``rows`` as from ``profiling.measure.timing.run_timeline``: ``{variant, segment, start_s, seconds}``. Each variant is
    a row of the chart; its segments are drawn from its start in the run, so the bars read as the run's timeline."""
    fig = go.Figure()
    variants = list(dict.fromkeys(str(r["variant"]) for r in rows))
    if not variants:
        fig.add_annotation(text="No timing recorded for this run yet", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, height=240)
        return fig
    help_text = {SETUP: "loading the dataset, preparing the model, sampling the test split", **SEGMENTS}
    order = [s for s in [SETUP, *ORDER] if any(r["segment"] == s for r in rows)]
    for segment in order:
        part = [r for r in rows if r["segment"] == segment]
        fig.add_trace(go.Bar(
            name=segment,
            orientation="h",
            y=[str(r["variant"]) for r in part],
            x=[float(r["seconds"]) for r in part],
            base=[float(r["start_s"]) for r in part],
            marker_color=SEGMENT_COLORS.get(segment, "#999999"),
            customdata=[[float(r["start_s"]), help_text.get(segment, "")] for r in part],
            hovertemplate=(f"<b>%{{y}}</b><br>{segment}: %{{x:.2f}} s (from %{{customdata[0]:.1f}} s)"
                           "<br>%{customdata[1]}<extra></extra>"),
        ))
    fig.update_layout(
        title=title,
        barmode="overlay",  # segments never overlap: each has its own base, so overlay draws them side by side
        xaxis_title="seconds since the run started",
        yaxis={"categoryorder": "array", "categoryarray": variants[::-1], "title": None},
        legend={"orientation": "h", "y": -0.25, "traceorder": "normal"},
        height=max(260, 80 + 34 * len(variants)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def render(store: Any, run_id: str, variants: list[dict]) -> None:
    """The "Where the time went" section of the Results page (nothing before any variant has timing)."""
    import streamlit as st

    old = any(v.get("status") == VariantStatus.DONE and not (v.get("metrics") or {}).get("timing_s") for v in variants)
    rows = run_timeline(variants, store.timelines(run_id) if old else None)  # older runs: from the phase marks
    if not rows:
        return
    st.subheader("Where the time went")
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["segment"]] = totals.get(r["segment"], 0.0) + float(r["seconds"])
    whole = sum(totals.values())
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
    st.caption(f"{whole:.1f} s in all; most of it in " + ", ".join(f"{s} ({x / whole:.0%})" for s, x in top if whole)
               + ". Hover a segment for what it covers; `python -m profiling timing RUN_ID` prints the same table.")
    st.plotly_chart(timeline_figure(rows), key=f"timing_{run_id}")
