"""Sweeps on the Results page: launch one (a background job), follow it, and plot latency / throughput against batch
size per variant, one line per thread count."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from profiling.report.figures import PALETTE
from profiling.schema import ACTIVE_STATUSES, FINISHED_STATUSES, RunStatus, VariantStatus

METRICS = {"ms_per_batch": "Latency per batch, median (ms)", "texts_per_s": "Throughput (texts/s)"}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def points_frame(points: Sequence[dict]) -> pd.DataFrame:
    """The successful points as a table (sequence length as text: numbers and 'real' side by side)."""
    rows = [
        {
            "Variant": p["variant"],
            "Batch": p["batch_size"],
            "Sequence": str(p["seq_len"]),
            "Threads": p["threads"],
            "ms_per_batch": p.get("ms_per_batch"),
            "texts_per_s": p.get("texts_per_s"),
            "Padding waste": p.get("padding_waste"),
            "Peak RAM (MiB)": p.get("peak_rss_mib"),
            "Error": p.get("error"),
        }
        for p in points
    ]
    return pd.DataFrame(rows, columns=["Variant", "Batch", "Sequence", "Threads", "ms_per_batch", "texts_per_s",
                                       "Padding waste", "Peak RAM (MiB)", "Error"])


def sweep_figure(points: Sequence[dict], seq_len: str, metric: str = "ms_per_batch") -> go.Figure:
    """One line per (variant, thread count) over batch size, for one sequence length ('real' = dynamic padding)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    df = points_frame(points)
    df = df[(df["Sequence"] == str(seq_len)) & df[metric].notna()]
    variants = list(dict.fromkeys(points_frame(points)["Variant"]))
    threads = sorted(df["Threads"].unique())
    fig = go.Figure()
    for (variant, n_threads), part in df.groupby(["Variant", "Threads"], sort=False):
        part = part.sort_values("Batch")
        fig.add_trace(go.Scatter(
            x=part["Batch"], y=part[metric], mode="lines+markers", name=f"{variant} · {n_threads} thr",
            line={"color": PALETTE[variants.index(variant) % len(PALETTE)],
                  "dash": DASHES[threads.index(n_threads) % len(DASHES)]},
            customdata=part[["Padding waste"]].fillna(0).to_numpy(),
            hovertemplate=f"batch %{{x}}<br>{METRICS[metric]} %{{y:.1f}}<br>padding waste %{{customdata[0]:.0%}}"
                          f"<extra>{variant} · {n_threads} threads</extra>",
        ))
    what = "real texts, dynamic padding" if str(seq_len) == "real" else f"{seq_len} tokens"
    fig.update_layout(title=f"{METRICS[metric]} vs batch size ({what})", xaxis_title="Batch size",
                      yaxis_title=METRICS[metric], margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=380)
    fig.update_xaxes(type="log", tickvals=sorted(df["Batch"].unique()) or None)
    return fig


def render(store, run_id: str) -> None:
    """The run's sweeps from the store, newest first; a finished run also gets a form launching a sweep of its
    variants as a background job, and the sweep jobs still going (or just failed) followed live."""
    import streamlit as st

    from dashboard import share
    from profiling.jobs.sweep import stored_sweeps

    run = store.get_run(run_id) or {}
    finished = run.get("status") in FINISHED_STATUSES
    sweeps = stored_sweeps(store, run_id)
    if finished and not share.locked():
        _launch_section(store, run_id, opened=not sweeps)
    if not sweeps:
        if share.locked() or not finished:
            st.caption("No sweep stored for this run.")
        return
    st.subheader("Sweep: batch size, sequence length, threads")
    labels = [f"{s['id']} ({len(s['points'])} points)" for s in sweeps]
    pick = st.selectbox("Sweep", labels, key=f"sweep_pick_{run_id}") if len(sweeps) > 1 else labels[0]
    chosen = sweeps[labels.index(pick)]
    metric = st.radio("Show", list(METRICS), format_func=METRICS.get, horizontal=True, key=f"sweep_metric_{run_id}")
    seqs = list(dict.fromkeys(str(p["seq_len"]) for p in chosen["points"]))
    for seq in seqs:
        st.plotly_chart(sweep_figure(chosen["points"], seq, metric), key=f"sweep_{run_id}_{chosen['id']}_{seq}")
    st.caption("Each point ran in a fresh process; the figure is the median over passes of the texts divided by the "
               "batches per pass. 'real' = the run's texts, each batch padded to its longest (its padding waste is "
               "in the hover and the table).")
    st.dataframe(points_frame(chosen["points"]), hide_index=True)


def _launch_section(store, run_id: str, opened: bool) -> None:
    """Sweep jobs of the run still going (or the newest, if it failed), then the form launching a new one."""
    import streamlit as st

    from dashboard import jobs

    own = store.list_jobs("sweep", run_id)
    shown = [j for j in own if j["status"] in ACTIVE_STATUSES] or [j for j in own[:1] if j["status"] == RunStatus.FAILED]
    for job in shown:
        jobs.job_panel(store, job["id"])
    with st.expander("Sweep batch size / sequence length / threads", expanded=opened and not shown):
        request = sweep_form(store, run_id)
    if request is not None and jobs.launch("sweep", request) is not None:
        st.rerun()


def sweep_form(store, run_id: str) -> dict | None:
    """The sweep request of the form once submitted (else None): which variants, and the grid."""
    import streamlit as st

    from profiling.jobs.sweep import DEFAULT_REPEATS, DEFAULT_TEXTS, REAL, SweepSpec, parse_list

    usable = {v["idx"]: v["name"] for v in store.variants(run_id)
              if v["status"] == VariantStatus.DONE and v.get("artifact") and (Path(v["artifact"]) / "artifact.json").is_file()}
    if not usable:
        st.caption("No variant of this run has its model files on disk any more: nothing to sweep.")
        return None
    with st.form(f"sweep_form_{run_id}"):
        picked = st.multiselect("Variants", list(usable), default=list(usable), format_func=usable.get,
                                key=f"sweep_variants_{run_id}", help="The run's finished variants to time.")
        cols = st.columns(3)
        batches = cols[0].text_input("Batch sizes", "1,8,32", key=f"sweep_batches_{run_id}",
                                     help="Comma-separated whole numbers.")
        seqs = cols[1].text_input("Sequence lengths", f"32,128,{REAL}", key=f"sweep_seqs_{run_id}",
                                  help=f"Tokens per text, and/or '{REAL}': the run's texts, each batch padded to "
                                       "its longest.")
        threads = cols[2].text_input("Threads", "1,2", key=f"sweep_threads_{run_id}", help="Thread counts to try.")
        cols = st.columns(2)
        repeats = cols[0].number_input("Timed passes per point", 1, 100, DEFAULT_REPEATS, key=f"sweep_rep_{run_id}")
        n_texts = cols[1].number_input("Texts per pass", 1, 1000, DEFAULT_TEXTS, key=f"sweep_texts_{run_id}")
        submitted = st.form_submit_button("Launch the sweep", type="primary", icon=":material/rocket_launch:",
                                          help="Each point runs in a fresh background process, after any run or "
                                               "job already measuring; the chart appears here when it is done.")
    if not submitted:
        return None
    try:
        spec = SweepSpec(batch_sizes=parse_list(batches, "Batch sizes"),
                         seq_lens=parse_list(seqs, "Sequence lengths", allow_real=True),
                         threads=parse_list(threads, "Threads"), repeats=int(repeats), n_texts=int(n_texts))
    except ValueError as exc:
        st.error(f"Cannot launch: {exc}", icon=":material/block:")
        return None
    if not picked:
        st.error("Cannot launch: pick at least one variant.", icon=":material/block:")
        return None
    return {"run_id": run_id, "variants": sorted(picked), "spec": spec.to_json()}


def workloads_frame(variants: Sequence[dict]) -> pd.DataFrame:
    """Per variant and workload (a run's extra workloads): ms per batch, texts/s and the padding waste."""
    rows = []
    for v in variants:
        for w in (v.get("metrics") or {}).get("workloads") or []:
            rows.append({"Variant": v["name"], "Workload": w.get("label"), "ms / batch": w.get("ms_per_batch"),
                         "Texts/s": w.get("texts_per_s"), "Padding waste": w.get("padding_waste"),
                         "Mean batch width (tokens)": w.get("mean_batch_width"), "Batches": w.get("n_batches")})
    return pd.DataFrame(rows)


def render_workloads(variants: Sequence[dict]) -> None:
    """The run's extra latency workloads (``--workloads``), if it had any."""
    import streamlit as st

    df = workloads_frame(variants)
    if df.empty:
        return
    st.subheader("Latency on real texts and fixed shapes")
    st.caption("The same sampled test texts batched several ways, each pre-tokenized; ms per batch = median time of "
               "a pass over all the texts / batches per pass. Padding waste = share of the positions computed that "
               "are padding: dynamic padding pads each batch to its longest text, bucketing sorts by length first.")
    st.dataframe(df, hide_index=True, column_config={
        "ms / batch": st.column_config.NumberColumn(format="%.1f"),
        "Texts/s": st.column_config.NumberColumn(format="%.1f"),
        "Padding waste": st.column_config.NumberColumn(format="percent"),
        "Mean batch width (tokens)": st.column_config.NumberColumn(format="%.1f"),
    })


WORKLOAD_CHOICES = {
    "dynamic": "Real texts, dynamic padding (each batch padded to its longest text)",
    "bucketed": "Real texts, length-bucketed (sorted by length within 8 batches, then padded)",
    "fixed:32": "Fixed shape: batch x 32 tokens",
    "fixed:128": "Fixed shape: batch x 128 tokens",
}


def workloads_picker(batch_size: int) -> list[str]:
    """Extra latency workloads for a run (``profiling.measure.workloads``), at the run's batch size; [] when none picked."""
    import streamlit as st

    picked = st.multiselect(
        "Extra latency workloads", list(WORKLOAD_CHOICES), format_func=WORKLOAD_CHOICES.get, key="set_workloads",
        help="Also time passes over the latency texts batched these ways (pre-tokenized, in the same process) and "
             "record each one's padding waste: how much of the work is spent on padding, and what bucketing saves.",
    )
    out = []
    for choice in picked:
        kind, _, seq = choice.partition(":")
        out.append(f"fixed:{batch_size}x{seq}" if kind == "fixed" else f"{kind}:{batch_size}")
    return out
