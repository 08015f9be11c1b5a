"""Sensitivity map page body: launch a map as a background job, follow it, draw the stored maps, suggest excludes."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import jobs
from profiling.jobs import sensitivity
from profiling.schema import RunStatus

log = logging.getLogger(__name__)

METRICS = {
    "agreement": ("Agreement with the unchanged model", True),  # (label, lower is worse)
    "delta_accuracy": ("Change in accuracy", True),
    "mean_logit_change": ("Mean |change in logits|", False),
    "max_logit_change": ("Max |change in logits|", False),
}
TECHNIQUE_LABELS = {"int8": "int8 weights (per Linear)", "heads": "Remove one attention head", "low-rank": "Low-rank SVD (per Linear)"}
DATASETS = ("movie-reviews", "tweets")


def grid(result: dict[str, Any], metric: str) -> tuple[list[str], list[str], list[list[float | None]]]:
    """(row labels 'layer i', column labels, z values) of the map; cells without a unit are None."""
    rows = [r for r in result["rows"] if r.get("layer") is not None]
    layers = sorted({int(r["layer"]) for r in rows})
    columns: list[str] = []
    for r in rows:
        if r["column"] not in columns:
            columns.append(r["column"])
    z: list[list[float | None]] = [[None] * len(columns) for _ in layers]
    for r in rows:
        z[layers.index(int(r["layer"]))][columns.index(r["column"])] = float(r[metric])
    return [f"layer {i}" for i in layers], columns, z


def color_range(metric: str, z: list[list[float | None]]) -> dict[str, Any]:
    """A colour scale that fits the quantity: agreement within 0..1 with 1 (unchanged) lightest, a change in
    accuracy diverging around 0, logit changes from 0; a map whose cells are all equal is not drawn all dark."""
    values = [v for row in z for v in row if v is not None]
    if not values:
        return {}
    lo, hi = min(values), max(values)
    if metric == "agreement":
        return {"zmin": max(0.0, min(lo, 0.95)), "zmax": 1.0}
    if metric == "delta_accuracy":
        m = max(abs(lo), abs(hi), 0.01)
        return {"colorscale": "RdBu", "reversescale": False, "zmid": 0.0, "zmin": -m, "zmax": m}
    return {"zmin": 0.0, "zmax": max(hi, 1e-6)}


def heatmap_figure(result: dict[str, Any], metric: str = "agreement") -> go.Figure:
    """Layer x sublayer (or layer x head) heatmap; the colour scale runs from harmless (light) to damaging (dark red)."""
    label, lower_is_worse = METRICS[metric]
    ylabels, xlabels, z = grid(result, metric)
    text = [["" if v is None else f"{v:.3f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=xlabels, y=ylabels, text=text, texttemplate="%{text}", colorbar={"title": label}, hoverongaps=False,
            hovertemplate="%{y} · %{x}<br>" + label + ": %{z:.4f}<extra></extra>",
            **{"colorscale": "Reds", "reversescale": lower_is_worse, **color_range(metric, z)},
        )
    )
    what = TECHNIQUE_LABELS.get(result["technique"], result["technique"])
    fig.update_layout(
        title=f"{what}: {label.lower()} ({result.get('samples', '?')} {result.get('split', 'train')} examples)",
        yaxis={"autorange": "reversed"}, height=120 + 45 * len(ylabels), margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def rows_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The units, most damaging first."""
    order = sensitivity.most_sensitive(result, len(result["rows"]))
    by_unit = {r["unit"]: r for r in result["rows"]}
    return pd.DataFrame(
        [
            {
                "Layer": by_unit[u]["label"],
                "Module": u,
                "Accuracy": by_unit[u]["accuracy"],
                "Δ accuracy": by_unit[u]["delta_accuracy"],
                "Agreement": by_unit[u]["agreement"],
                "Mean |Δ logit|": by_unit[u].get("mean_logit_change"),
                "Max |Δ logit|": by_unit[u]["max_logit_change"],
            }
            for u in order
        ]
    )


def _compute_form() -> None:
    with st.form("sensitivity-form"):
        cols = st.columns(4)
        dataset = cols[0].selectbox("Dataset", DATASETS, help="The default classifier fine-tuned on it is used.")
        technique = cols[1].selectbox("Technique", list(TECHNIQUE_LABELS), format_func=TECHNIQUE_LABELS.get)
        samples = cols[2].number_input(
            "Train examples", min_value=8, max_value=2000, value=sensitivity.DEFAULT_SAMPLES, step=8,
            help="A seeded sample of the TRAIN split (the test split is never used here). More examples resolve "
            "smaller differences but take proportionally longer.",
        )
        seed = cols[3].number_input("Seed", min_value=0, value=0, step=1)
        fraction = st.slider("Rank fraction (low-rank only)", 0.05, 1.0, 0.25, 0.05)
        submitted = st.form_submit_button("Compute the map", type="primary")
    st.caption(
        "int8 is simulated in PyTorch (symmetric per-output-channel rounding of one Linear's weights, as ONNX "
        "Runtime's qint8 weights); fast, but activations stay float. Each layer (or head) is changed alone and "
        "put back before the next. The map is computed in a background process (after any run or job already "
        "measuring) and stored with the runs."
    )
    if not submitted:
        return
    job_id = jobs.launch("sensitivity", {
        "model": f"default:{dataset}", "dataset": {"kind": "bundled", "name": dataset}, "technique": technique,
        "samples": int(samples), "seed": int(seed), "rank_fraction": float(fraction)})
    if job_id is not None:
        st.query_params["job"] = job_id  # a reload keeps following it
        st.rerun()


def _map_label(entry: dict[str, Any]) -> str:
    r = entry["result"]
    date = str(entry.get("created") or "").replace("T", " ")[:16]
    what = TECHNIQUE_LABELS.get(r.get("technique"), r.get("technique"))
    return f"{date} · {what} · {r.get('dataset', '?')} · {r.get('model', '?')} · {entry['id']}"


EXCLUDE_TARGETS = ("onnx-int8", "onnx-static-int8", "prune-magnitude", "low-rank")


def _exclude_box(result: dict[str, Any]) -> None:
    if result["technique"] == "heads":
        st.caption("A head map names heads, not Linear layers: use it to read which heads matter.")
        return
    n = len(result["rows"])
    k = st.number_input("Exclude the most sensitive layers: how many", 0, n, min(3, n), key="sensitivity-k")
    names = sensitivity.most_sensitive(result, int(k))
    if not names:
        return
    value = "+".join(names)
    st.markdown("Keep these layers out of the technique: tick it on the Run page with its **exclude_layers** "
                "option set to them.")
    cols = st.columns(len(EXCLUDE_TARGETS))
    for col, technique in zip(cols, EXCLUDE_TARGETS, strict=True):
        if col.button(f"Use in {technique}", key=f"sensitivity-use-{technique}",
                      help=f"Opens the Run page with {technique} ticked and exclude_layers set to the {len(names)} "
                      "most sensitive layers above."):
            from dashboard.techniques import prefill_technique

            prefill_technique(technique, exclude_layers=value)
            st.switch_page("pages/run.py")
    st.markdown("On the command line ('+' separates names inside a technique spec):")
    st.code(f"onnx>onnx-int8:exclude_layers={value}", language=None)


def render() -> None:
    from dashboard import state
    from dashboard.entry import through_app
    from profiling.store.runs import read_only

    through_app()  # started without app.py (login, read-only page list): go through it
    st.title("Sensitivity map")
    if read_only():  # the page is not registered then; this guards a future route to it (it computes and writes)
        st.info("Sensitivity maps are computed on this page, and this installation is read-only.")
        return
    st.write(
        "Apply one technique to one layer (or one attention head) at a time and measure how much the predictions "
        "change on a small sample of the training split. Layers that hurt most are candidates to leave out."
    )
    store = state.get_store()
    _compute_form()
    wanted = st.query_params.get("job")
    job = store.get_job(wanted) if wanted else None
    if job is not None and job["kind"] == "sensitivity" and job["status"] != RunStatus.DONE:
        jobs.job_panel(store, wanted)  # queued, running or failed: its progress (live) or its reason
    elif wanted and job is None:
        st.warning(f"Job {wanted} is not in the store (deleted?).")
    maps = sensitivity.stored_maps(store)
    if not maps:
        st.info("No map computed yet: choose a technique and press 'Compute the map' (it runs in the background; the time grows with the number of layers and examples).")
        return
    ids = [m["id"] for m in maps]
    chosen = st.selectbox("Stored maps", ids, index=ids.index(wanted) if wanted in ids else 0,
                          format_func=lambda i: _map_label(maps[ids.index(i)]), key="sensitivity-map")
    if wanted in ids and chosen != wanted:
        st.query_params["job"] = chosen
    result = maps[ids.index(chosen)]["result"]
    if not isinstance(result.get("rows"), list) or "baseline_accuracy" not in result:
        st.error(f"The stored map {chosen} is not readable.")
        return
    st.caption(
        f"{result.get('description', '')}. Model {result.get('model')}, {result.get('samples')} examples of the "
        f"{result.get('split')} split (seed {result.get('seed')}), baseline accuracy "
        f"{result['baseline_accuracy']:.3f}, computed in {result.get('seconds', 0):.1f} s."
    )
    metric = st.radio("Colour by", list(METRICS), format_func=lambda m: METRICS[m][0], horizontal=True)
    st.plotly_chart(heatmap_figure(result, metric), width="stretch")
    _exclude_box(result)
    st.dataframe(rows_frame(result), hide_index=True, width="stretch")
