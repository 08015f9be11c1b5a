"""A run's live views shared by the Run and History pages: the memory timeline and the results table."""

from __future__ import annotations

from typing import Any

import streamlit as st


def memory_figure(timelines: dict[str, dict], running: str | None) -> Any:
    """The live memory timeline (H5b's figure: the running variant bold over the finished ones, phases marked)."""
    from profiling.report.figures import memory_timeline_figure

    return memory_timeline_figure(timelines, running)


LIVE_FIGURES = (
    "peak_rss_mib",
    "disk_mib",
    "load_time_s",
    "latency_b1_median_ms",
    "latency_bN_median_ms",
    "throughput_per_s",
    "accuracy",
    "agreement",
)


def results_table(
    store: Any, run_id: str, variants: list[dict] | None = None, compact: bool = True
) -> tuple[Any, dict[str, Any]]:
    """The run's results table with the Results page's headers (compact: the headline figures only), and the
    st.dataframe column formats for it (numbers rounded, blank until measured)."""
    from profiling.report import frames as rd
    df = rd.metrics_frame(variants if variants is not None else store.variants(run_id))
    heads = rd.display_columns(df)
    keys = [k for k in ("variant", "status", *(LIVE_FIGURES if compact else rd.FIGURES)) if k in df.columns]
    fmt: dict[str, Any] = {heads["variant"]: st.column_config.TextColumn(heads["variant"], pinned=True)}
    for key in keys:
        if key in ("accuracy", "macro_f1", "agreement"):
            fmt[heads[key]] = st.column_config.NumberColumn(heads[key], format="%.3f")
        elif key in rd.FIGURES:
            fmt[heads[key]] = st.column_config.NumberColumn(
                heads[key], format="%.2f" if key == "load_time_s" else "%.1f"
            )
    return df[keys].rename(columns=heads).reset_index(drop=True), fmt


def show_results_table(store: Any, run_id: str, variants: list[dict] | None = None, compact: bool = True) -> None:
    table, fmt = results_table(store, run_id, variants, compact)
    st.dataframe(table, hide_index=True, column_config=fmt)
