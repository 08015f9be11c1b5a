"""Plotly figures for the dashboard: memory timelines, tradeoff scatters, confusion matrices (pure, no streamlit)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# One colour per variant, in variant order, shared by every figure so a variant looks the same everywhere.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#ad494a",
    "#637939",
    "#843c39",
    "#7b4173",
)
ORIGINAL_COLOR = "#111111"
FRONTIER_COLOR = "rgba(90, 90, 90, 0.75)"

# Column -> (axis/hover label, hover number format). Columns a frame lacks are skipped.
LABELS: dict[str, tuple[str, str]] = {
    "disk_mib": ("Disk (MiB)", ".1f"),
    "peak_rss_mib": ("Peak RAM (MiB)", ".0f"),
    "load_time_s": ("Load time (s)", ".2f"),
    "latency_b1_median_ms": ("Latency batch 1, median (ms)", ".1f"),
    "latency_b1_p90_ms": ("Latency batch 1, p90 (ms)", ".1f"),
    "latency_bN_median_ms": ("Latency batch N, median (ms)", ".1f"),
    "latency_bN_p90_ms": ("Latency batch N, p90 (ms)", ".1f"),
    "throughput_per_s": ("Throughput (examples/s)", ".1f"),
    "accuracy": ("Accuracy", ".3f"),
    "macro_f1": ("Macro-F1", ".3f"),
    "agreement": ("Agreement with original", ".3f"),
    "param_count": ("Parameters", ",.0f"),
}
_MARGIN = {"l": 10, "r": 10, "t": 50, "b": 10}


def variant_color(position: int) -> str:
    """The colour of the variant at ``position`` (0 = the original, drawn in near-black)."""
    return ORIGINAL_COLOR if position == 0 else PALETTE[(position - 1) % len(PALETTE)]


def axis_label(column: str) -> str:
    return LABELS.get(column, (column.replace("_", " "), ""))[0]


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14, "color": "#888"}
    )
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False, height=320, margin=_MARGIN)
    return fig


# ---- memory timeline ---------------------------------------------------------------------------------------


def memory_timeline_figure(
    timelines: dict[str, dict],
    running: str | None = None,
    selected: list[str] | None = None,
    title: str = "Memory (RSS) over time",
) -> go.Figure:
    """RSS of each variant's process over time, phases marked; the running variant drawn bold with labelled phases.

    ``timelines`` maps variant name -> {"t": [s], "mib": [MiB], "phases": [[name, t], ...]} in variant order
    (the first is the original); ``selected`` restricts which are drawn (None = all).
    """
    names = list(timelines)
    shown = [n for n in names if (selected is None or n in selected) and timelines[n].get("t")]
    if not shown:
        return _empty(title, "No memory samples yet")
    fig = go.Figure()
    # Label the phases of one variant only (the running one, or the only one shown) to keep the plot readable.
    labelled = running if running in shown else (shown[0] if len(shown) == 1 else None)
    for name in shown:
        tl = timelines[name]
        color = variant_color(names.index(name))
        t = np.asarray(tl["t"], dtype=float)
        mib = np.asarray(tl["mib"], dtype=float)
        bold = name == running
        dim = running is not None and not bold
        fig.add_trace(
            go.Scatter(
                x=t,
                y=mib,
                mode="lines",
                name=name + (" (running)" if bold else ""),
                legendgroup=name,
                line={"color": color, "width": 3.5 if bold else 1.8},
                opacity=0.55 if dim else 1.0,
                hovertemplate=f"<b>{name}</b><br>%{{x:.2f}} s: %{{y:.0f}} MiB<extra></extra>",
            )
        )
        phases = [(str(p[0]), float(p[1])) for p in tl.get("phases") or [] if len(p) >= 2]
        if phases:
            pt = np.array([p[1] for p in phases])
            py = np.interp(pt, t, mib)
            fig.add_trace(
                go.Scatter(
                    x=pt,
                    y=py,
                    mode="markers+text" if name == labelled else "markers",
                    legendgroup=name,
                    showlegend=False,
                    name=name,
                    text=[p[0] for p in phases],
                    textposition="top center",
                    textfont={"size": 11, "color": color},
                    marker={"symbol": "diamond", "size": 9, "color": color, "line": {"color": "white", "width": 1}},
                    opacity=0.55 if dim else 1.0,
                    hovertemplate=f"<b>{name}</b><br>%{{text}} starts at %{{x:.2f}} s (%{{y:.0f}} MiB)<extra></extra>",
                )
            )
        if name == labelled:
            for _, pt_s in phases:
                fig.add_vline(x=pt_s, line={"color": color, "width": 1, "dash": "dot"}, opacity=0.5)
    fig.update_layout(
        title=title,
        height=420,
        margin=_MARGIN,
        hovermode="closest",
        xaxis_title="time since the profiling process started (s)",
        yaxis_title="resident memory, RSS (MiB)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    fig.update_yaxes(rangemode="tozero")
    return fig


def phase_positions(t: np.ndarray, phases: Sequence[tuple[str, float]], order: Sequence[str]) -> np.ndarray:
    """Each time ``t`` on a phase-aligned axis: phase ``order[k]`` spans [k, k+1) whatever it lasted, so the same
    phase of every variant lines up. Before the first phase: 0; the last phase ends at the last sample."""
    starts = [(order.index(n), s) for n, s in phases if n in order]
    if not starts:
        return np.zeros_like(t)
    out = np.zeros_like(t, dtype=float)
    end_t = float(np.max(t)) if len(t) else 0.0
    for j, (k, start) in enumerate(starts):
        stop = starts[j + 1][1] if j + 1 < len(starts) else max(end_t, start + 1e-9)
        inside = (t >= start) & (t < stop if j + 1 < len(starts) else t <= stop)
        span = (stop - start) or 1e-9
        out[inside] = k + np.clip((t[inside] - start) / span, 0.0, 1.0)
    return out


def memory_by_phase_figure(
    timelines: dict[str, dict],
    peaks: dict[str, tuple[float, str | None, str | None]] | None = None,
    selected: list[str] | None = None,
    title: str = "Memory (RSS) by phase",
) -> go.Figure:
    """RSS of each variant's process with its phases aligned (load, warm-up, latency, evaluation each one slot wide,
    whatever they lasted), so short and long runs compare phase by phase. Each variant's highest sample is marked
    (triangle); ``peaks`` (name -> (reported peak MiB, its phase, its source)) adds the kernel's high-water mark
    (cross) where it is above every sample."""
    names = list(timelines)
    shown = [n for n in names if (selected is None or n in selected) and timelines[n].get("t")]
    if not shown:
        return _empty(title, "No memory samples yet")
    order: list[str] = []
    for n in shown:
        for p in timelines[n].get("phases") or []:
            if len(p) >= 2 and str(p[0]) not in order:
                order.append(str(p[0]))
    fig = go.Figure()
    for name in shown:
        tl = timelines[name]
        color = variant_color(names.index(name))
        t = np.asarray(tl["t"], dtype=float)
        mib = np.asarray(tl["mib"], dtype=float)
        phases = [(str(p[0]), float(p[1])) for p in tl.get("phases") or [] if len(p) >= 2]
        x = phase_positions(t, phases, order)
        fig.add_trace(go.Scatter(
            x=x, y=mib, mode="lines", name=name, legendgroup=name, line={"color": color, "width": 1.8},
            customdata=t, hovertemplate=f"<b>{name}</b><br>%{{customdata:.2f}} s: %{{y:.0f}} MiB<extra></extra>",
        ))
        top = int(np.argmax(mib))
        fig.add_trace(go.Scatter(
            x=[x[top]], y=[mib[top]], mode="markers", name=f"{name}: peak", legendgroup=name, showlegend=False,
            marker={"symbol": "triangle-down", "size": 12, "color": color, "line": {"color": "#000", "width": 1}},
            hovertemplate=f"<b>{name}</b><br>highest sample: {mib[top]:.0f} MiB<extra></extra>",
        ))
        peak, phase, source = (peaks or {}).get(name, (None, None, None))
        if peak is not None and math.isfinite(peak) and peak > float(mib[top]) + 0.5 and source != "sampled":
            slot = order.index(phase) + 0.5 if phase in order else float(x[top])
            fig.add_trace(go.Scatter(
                x=[slot], y=[peak], mode="markers", name=f"{name}: high-water mark", legendgroup=name,
                showlegend=False, marker={"symbol": "x", "size": 11, "color": color, "line": {"width": 1}},
                hovertemplate=(f"<b>{name}</b><br>kernel high-water mark: {peak:.0f} MiB during {phase or '?'} "
                               f"(between two samples)<extra></extra>"),
            ))
    for k in range(1, len(order)):
        fig.add_vline(x=k, line={"color": "#999", "width": 1, "dash": "dot"})
    fig.update_layout(
        title={"text": f"{title}<br><sup>each phase one slot wide, whatever it lasted; \u25bc highest sample, "
                       "\u2715 kernel high-water mark above the samples</sup>"},
        height=480, margin={"l": 10, "r": 10, "t": 70, "b": 10}, hovermode="closest",
        xaxis={"tickvals": [k + 0.5 for k in range(len(order))], "ticktext": order, "range": [0, len(order)],
               "title": "phase of the profiling process"},
        yaxis_title="resident memory, RSS (MiB)",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},  # clear of the title
    )
    fig.update_yaxes(rangemode="tozero")
    return fig


# ---- tradeoff scatter --------------------------------------------------------------------------------------


def pareto_front(df: pd.DataFrame, x: str, y: str) -> list[Hashable]:
    """Index labels of the rows no other row beats (lower-or-equal x and higher-or-equal y, one strictly),
    sorted by x then y. Rows with a missing or non-finite x or y are ignored; exact duplicates are all kept."""
    if df.empty or x not in df or y not in df:
        return []
    data = df[[x, y]].apply(pd.to_numeric, errors="coerce")
    data = data[np.isfinite(data[x]) & np.isfinite(data[y])]
    ordered = data.sort_values([x, y], ascending=[True, False], kind="mergesort")
    front: list[Hashable] = []
    best_y = -math.inf
    best_x = math.nan
    for label, row in ordered.iterrows():
        xv, yv = row[x], row[y]
        if yv > best_y:
            front.append(label)
            best_y, best_x = yv, xv
        elif yv == best_y and xv == best_x:  # an exact duplicate of the last frontier point
            front.append(label)
    return front


def _hover(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, str]:
    cols = [c for c in LABELS if c in df.columns]
    for extra in (x, y):
        if extra not in cols and extra in df.columns:
            cols.append(extra)
    lines = ["<b>%{hovertext}</b>"]
    for i, col in enumerate(cols):
        label, fmt = LABELS.get(col, (col, ".3g"))
        if col.startswith("latency_bN") and "batch_size" in df.columns and df["batch_size"].notna().any():
            label = label.replace("batch N", f"batch {int(df['batch_size'].dropna().iloc[0])}")
        lines.append(f"{label}: %{{customdata[{i}]:{fmt}}}")
    custom = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float) if cols else np.empty((len(df), 0))
    return custom, "<br>".join(lines) + "<extra></extra>"


def tradeoff_scatter(
    df: pd.DataFrame,
    x: str,
    y: str = "accuracy",
    size: str = "peak_rss_mib",
    log_x: bool = False,
    title: str | None = None,
) -> go.Figure:
    """One bubble per variant (area = ``size``), hover with every figure, the Pareto frontier (min x, max y) as a
    step line, the original drawn as a star. ``df`` needs a ``variant`` column; row 0 (or ``idx`` 0) is the original."""
    title = title or f"{axis_label(y)} vs {axis_label(x).lower()}"
    if df.empty or x not in df or y not in df:
        return _empty(title, "No finished variants yet")
    data = df.copy()
    for col in (x, y, size):
        if col in data:
            data[col] = pd.to_numeric(data[col], errors="coerce")
    data = data[np.isfinite(data[x]) & np.isfinite(data[y])]
    if data.empty:
        return _empty(title, "No finished variants with these figures yet")
    positions = {label: i for i, label in enumerate(df.index)}
    is_orig = (data["idx"] == 0) if "idx" in data else pd.Series([positions[i] == 0 for i in data.index], data.index)

    if size in data and np.isfinite(data[size]).any():
        sizes = data[size].fillna(data[size].min()).to_numpy(dtype=float)
        sizeref = 2.0 * float(np.nanmax(sizes)) / (46.0**2)  # the largest bubble ~46 px across
    else:
        sizes, sizeref = np.full(len(data), 1.0), 2.0 / (22.0**2)

    fig = go.Figure()
    front = pareto_front(data, x, y)
    fx = data.loc[front, x].to_numpy(dtype=float)
    fy = data.loc[front, y].to_numpy(dtype=float)
    if len(set(zip(fx, fy, strict=True))) >= 2:  # a single best point has no line to draw (its outline marks it)
        fig.add_trace(
            go.Scatter(
                x=fx,
                y=fy,
                mode="lines",
                line_shape="hv",
                name="Pareto frontier",
                line={"color": FRONTIER_COLOR, "width": 2, "dash": "dash"},
                hoverinfo="skip",
            )
        )
    custom, template = _hover(data, x, y)
    # Colour by variant idx (as the memory timeline does), so a variant keeps its colour when others failed.
    order = data["idx"].astype(int) if "idx" in data else pd.Series([positions[i] for i in data.index], data.index)
    colors = [variant_color(int(order[i])) for i in data.index]
    names = data["variant"].astype(str).tolist() if "variant" in data else [str(i) for i in data.index]
    on_front = [i in set(front) for i in data.index]
    xs_, ys_ = data[x].to_numpy(dtype=float), data[y].to_numpy(dtype=float)
    labels, label_sides = place_labels(xs_, ys_, names, [f or bool(o) for f, o in zip(on_front, is_orig)], log_x)
    fig.add_trace(
        go.Scatter(
            x=data[x],
            y=data[y],
            mode="markers+text",
            name="variants",
            showlegend=False,
            text=labels,  # frontier points whose label fits without touching another; every point on hover
            hovertext=names,
            textposition=label_sides,
            textfont={"size": 12},
            cliponaxis=False,  # long variant names may run into the margin rather than be cut
            customdata=custom,
            hovertemplate=template,
            marker={
                "size": sizes,
                "sizemode": "area",
                "sizeref": sizeref,
                "sizemin": 7,
                "color": colors,
                "opacity": 0.8,
                "symbol": ["star" if o else "circle" for o in is_orig],
                "line": {
                    "color": ["#000" if f else "white" for f in on_front],
                    "width": [2 if f else 1 for f in on_front],
                },
            },
        )
    )
    subtitle = (f"bubble area = {axis_label(size)}; black outline = on the Pareto frontier (dashed); the frontier and the "
                "original are labelled, hover any bubble for its name and figures")
    fig.update_layout(
        title={"text": f"{title}<br><sup>{subtitle}</sup>"},
        height=440,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        xaxis_title=axis_label(x) + (" (log scale)" if log_x else ""),
        yaxis_title=axis_label(y),
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0},
        hovermode="closest",
    )
    if log_x:
        fig.update_xaxes(type="log")
    _pad_axes(fig, data[x].to_numpy(dtype=float), data[y].to_numpy(dtype=float), log_x)
    return fig


# The plot area a label must fit in: a half-width chart at a 1280-pixel window (the smallest the page aims at).
PLOT_PX = (520.0, 320.0)
_CHAR_PX, _LINE_PX, _GAP_PX = 7.0, 16.0, 10.0  # 12 px text: average glyph width, line height, gap to the marker


def place_labels(
    xs: np.ndarray, ys: np.ndarray, names: Sequence[str], wanted: Sequence[bool], log_x: bool = False
) -> tuple[list[str], list[str]]:
    """(text, textposition) per point: a label for each ``wanted`` point (the frontier) on the first side where its
    box touches neither another label nor another marker in a ``PLOT_PX`` plot, else none (hover still names it)."""
    px_x = np.log10(xs) if log_x and np.all(xs > 0) else xs.astype(float)

    def to_px(v: np.ndarray, extent: float) -> np.ndarray:
        lo, hi = float(np.min(v)), float(np.max(v))
        pad = (hi - lo) * 0.2 or (abs(hi) * 0.05 or 0.05)  # as _pad_axes
        return (v - (lo - pad)) / ((hi + pad) - (lo - pad)) * extent

    cx, cy = to_px(px_x, PLOT_PX[0]), to_px(ys.astype(float), PLOT_PX[1])
    markers = [(cx[i] - 6, cy[i] - 6, cx[i] + 6, cy[i] + 6) for i in range(len(cx))]
    placed: list[tuple[float, float, float, float]] = []
    texts, sides = [""] * len(cx), ["top center"] * len(cx)

    def box(i: int, side: str) -> tuple[float, float, float, float]:
        w, h = _CHAR_PX * len(names[i]), _LINE_PX
        if side == "top center":
            return (cx[i] - w / 2, cy[i] + _GAP_PX, cx[i] + w / 2, cy[i] + _GAP_PX + h)
        if side == "bottom center":
            return (cx[i] - w / 2, cy[i] - _GAP_PX - h, cx[i] + w / 2, cy[i] - _GAP_PX)
        if side == "middle right":
            return (cx[i] + _GAP_PX, cy[i] - h / 2, cx[i] + _GAP_PX + w, cy[i] + h / 2)
        return (cx[i] - _GAP_PX - w, cy[i] - h / 2, cx[i] - _GAP_PX, cy[i] + h / 2)

    def hits(a: tuple, b: tuple) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    for i in sorted(range(len(cx)), key=lambda k: (cx[k], -cy[k])):
        if not wanted[i]:
            continue
        for side in ("top center", "middle right", "bottom center", "middle left"):
            b = box(i, side)
            others = [m for j, m in enumerate(markers) if j != i]
            if not any(hits(b, o) for o in placed + others):
                placed.append(b)
                texts[i], sides[i] = names[i], side
                break
    return texts, sides


def _pad_axes(fig: go.Figure, xs: np.ndarray, ys: np.ndarray, log_x: bool) -> None:
    """Leave room around the bubbles and their labels (plotly's autorange clips big markers at the edge)."""

    def span(v: np.ndarray, frac: float) -> list[float]:
        lo, hi = float(np.min(v)), float(np.max(v))
        pad = (hi - lo) * frac or (abs(hi) * 0.05 or 0.05)
        return [lo - pad, hi + pad]

    if log_x and np.all(xs > 0):
        lx = np.log10(xs)
        fig.update_xaxes(range=span(lx, 0.2))
    else:
        fig.update_xaxes(range=span(xs, 0.2))
    lo, hi = span(ys, 0.2)
    fig.update_yaxes(range=[lo, hi + (hi - lo) * 0.05])


# ---- confusion matrices -------------------------------------------------------------------------------------


def _matrix_layout(fig: go.Figure, labels: Sequence[str], title: str) -> None:
    n = len(labels)
    side = 150 + 60 * max(n, 2)
    fig.update_layout(title=title, height=min(side + 40, 560), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    # Fixed ranges: the clickable overlay's big markers would otherwise make plotly pad the axes.
    fig.update_xaxes(title="predicted", type="category", range=[-0.5, n - 0.5], constrain="domain", showgrid=False)
    fig.update_yaxes(
        title="true", type="category", range=[n - 0.5, -0.5], scaleanchor="x", constrain="domain", showgrid=False
    )


def confusion_heatmap(cm: Sequence[Sequence[float]], labels: Sequence[str], title: str) -> go.Figure:
    """Counts of (true row, predicted column), annotated."""
    z = np.asarray(cm, dtype=float)
    labels = [str(label) for label in labels]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale="Blues",
            showscale=False,
            zmin=0,
            zmax=max(float(z.max(initial=0)), 1),
            text=np.asarray(cm).astype(int).astype(str),
            texttemplate="%{text}",
            textfont={"size": 14},
            hovertemplate="true %{y}, predicted %{x}: %{z:.0f}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    _matrix_layout(fig, labels, title)
    return fig


def _signed(v: float) -> str:
    v = round(v)
    return f"+{v}" if v > 0 else (f"\u2212{-v}" if v < 0 else "0")


def confusion_diff_heatmap(
    diff: Sequence[Sequence[float]],
    labels: Sequence[str],
    title: str = "Difference: variant \u2212 original",
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """The change of each confusion cell (blue = more, red = fewer, white = same), with an invisible scatter of
    cell centres on top so a click on a cell is a selectable point (heatmaps have no point selection in plotly).
    The overlay's customdata is [true index, predicted index, change]; ``selected`` outlines that cell."""
    z = np.asarray(diff, dtype=float)
    labels = [str(label) for label in labels]
    n = len(labels)
    m = max(float(np.abs(z).max(initial=0)), 1.0)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale="RdBu",
            zmid=0,
            zmin=-m,
            zmax=m,
            xgap=2,
            ygap=2,
            text=[[_signed(v) for v in row] for row in z],
            texttemplate="%{text}",
            textfont={"size": 14},
            hoverinfo="skip",
            showscale=False,
        )
    )
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    fig.add_trace(
        go.Scatter(
            x=[labels[j] for j in jj],
            y=[labels[i] for i in ii],
            mode="markers",
            showlegend=False,
            name="cells",
            customdata=[[int(i), int(j), float(z[i, j])] for i, j in zip(ii, jj, strict=True)],  # plain JSON lists
            marker={"symbol": "square", "size": max(30, 220 // max(n, 1)), "color": "rgba(0,0,0,0)"},
            selected={"marker": {"color": "rgba(0,0,0,0.12)"}},
            unselected={"marker": {"opacity": 1}},
            hovertemplate=(
                "true %{y}, predicted %{x}: %{customdata[2]:+.0f} (variant \u2212 original)"
                "<br>click to list these examples<extra></extra>"
            ),
        )
    )
    if selected is not None and 0 <= selected[0] < n and 0 <= selected[1] < n:
        i, j = selected
        fig.add_shape(
            type="rect",
            x0=j - 0.5,
            x1=j + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            xref="x",
            yref="y",
            line={"color": "#111", "width": 3},
        )
    _matrix_layout(fig, labels, title)
    return fig


def cell_from_selection(selection: dict | None, labels: Sequence[str] | None = None) -> tuple[int, int] | None:
    """(true index, predicted index) of the diff-heatmap cell clicked, from a ``st.plotly_chart`` selection
    (``{"points": [{"customdata": [i, j, change], "x": predicted, "y": true, ...}], ...}``); None when nothing is
    selected. customdata may arrive as a list or as a {"0": i, "1": j} object (plotly typed arrays); the axis
    labels are the fallback."""
    if not selection:
        return None
    for point in selection.get("points") or []:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = [data.get("0"), data.get("1")]
        try:
            if isinstance(data, (list, tuple)) and len(data) >= 2:
                return int(data[0]), int(data[1])
        except (TypeError, ValueError):
            pass
        if labels is not None and point.get("y") in labels and point.get("x") in labels:
            return list(labels).index(point["y"]), list(labels).index(point["x"])
    return None
