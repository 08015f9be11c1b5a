"""A run as one self-contained HTML file: table, tradeoffs, memory, prediction changes, environment, methodology."""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from profiling.schema import FINISHED_STATUSES, RunStatus, VariantStatus
from profiling.store.runs import RunStore, describe_dataset

log = logging.getLogger(__name__)

MAX_CHANGED_ROWS = 60  # changed examples listed per variant (the count is always given in full)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 24px 32px 64px; color: #1f2430; line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #dde2ea; padding-bottom: 4px; }
.meta { color: #555; } table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #dde2ea; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f3f5f9; } td.text, th.text { text-align: left; } tr.failed td { color: #a33; }
.charts > div { width: 100%; margin-bottom: 12px; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 6px 10px; margin: 6px 0; }
.scroll { overflow-x: auto; } code { background: #f3f5f9; padding: 1px 4px; border-radius: 3px; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _esc(value)
    from profiling.report import frames as rd
    if key in rd.RATIOS:
        return f"{value:.2f}\u00d7"
    if key == rd.ACCURACY_DELTA[0]:
        return f"{value:+.1f}"
    if key in ("accuracy", "macro_f1", "agreement"):
        return f"{value:.3f}"
    if key == "param_count":
        return f"{value:,.0f}"
    if key == "load_time_s":
        return f"{value:.2f}"
    return f"{value:.1f}"


def _table(frame: pd.DataFrame, heads: dict[str, str], text_cols: set[str], row_class: pd.Series | None = None) -> str:
    cols = [c for c in heads if c in frame.columns]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th class="{"text" if c in text_cols else ""}">{_esc(heads[c])}</th>' for c in cols]
    out.append("</tr></thead><tbody>")
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = f' class="{row_class.iloc[i]}"' if row_class is not None else ""
        out.append(f"<tr{cls}>")
        for c in cols:
            td = "text" if c in text_cols else ""
            out.append(f'<td class="{td}">{_esc(row[c]) if c in text_cols else _fmt(c, row[c])}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Figures:
    """Turns plotly figures into <div>s; plotly.js is embedded inline with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: Any) -> str:
        self.count += 1
        fig = go.Figure(fig)  # a copy: room for the axis labels, the width of the page
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 50
        fig.update_layout(margin={"l": 80, "r": 30, "t": top, "b": 60}, autosize=True)
        return fig.to_html(full_html=False, include_plotlyjs=self.count == 1, default_width="100%",
                           config={"displaylogo": False, "responsive": True})


def _methodology(run: dict, variants: list[dict], has_intervals: bool) -> str:
    s = (run.get("request") or {}).get("settings") or {}
    raw = next((v["metrics"].get("latency_b1_ms") for v in variants if isinstance(v["metrics"].get("latency_b1_ms"),
                                                                                  list)), None)
    n_raw = f"{len(raw)}" if raw else str(s.get("repeats", "?"))
    intervals = (
        "The 95 % CI columns are seeded percentile-bootstrap intervals of the median over the raw timings "
        "(profiling.measure.stats); a variant whose interval overlaps the original's is within noise."
        if has_intervals else "No intervals are shown for this run (no raw timings stored); the p90 column shows "
        "the spread."
    )
    return f"""
<ul>
<li><b>Threads.</b> Every variant ran with {_esc(s.get('threads', '?'))} CPU thread(s) (intra-op threads of PyTorch /
ONNX Runtime and the tokenizer), fixed and recorded, in its own fresh process, one variant at a time.</li>
<li><b>Repeats.</b> After {_esc(s.get('warmup', '?'))} untimed warm-up calls, each latency figure comes from
{_esc(n_raw)} timed calls (batch 1, and batch {_esc(s.get('batch_size', '?'))}); the raw timings are kept.
Median and p90 are numpy linear percentiles; throughput = batch size / median batch latency.</li>
<li><b>Intervals.</b> {intervals} Accuracy comes from {_esc(s.get('eval_size', '?'))} test examples (seed
{_esc(s.get('seed', '?'))}); with that many examples a difference of one or two points can be noise.</li>
<li><b>RSS.</b> Peak RAM is the peak resident set size (RSS) of the variant's own profiling process, sampled 20 times
a second from process start through loading, warm-up, timing and evaluation: the physical memory the process
holds, including the Python runtime, libraries and the tokenizer, not only the weights. Shared library pages count
in full, so RSS of two processes does not add up exactly.</li>
<li><b>Disk</b> is the size of the variant's model folder (weights, config, tokenizer files).</li>
<li><b>Machine.</b> Figures hold for the machine in the environment fingerprint below; other processes running at
the same time inflate latencies.</li>
</ul>"""


def _predictions_section(store: RunStore, run_id: str, variants: list[dict], figure: _Figures) -> str:
    from profiling.report import figures as plots
    from profiling.report import frames as rd
    examples = store.examples(run_id)
    labels = [str(x) for x in examples.get("label_names") or []]
    original = store.predictions(run_id, 0)
    if not examples.get("texts") or not labels or not original:
        return "<p>No predictions of the original were recorded, so there is nothing to compare.</p>"
    y, n = examples["labels"], len(labels)
    cm_orig = rd.confusion(y, original["preds"], n)
    parts = ['<div class="charts">', f"<div>{figure(plots.confusion_heatmap(cm_orig, labels, 'Original'))}</div>",
             "</div>"]
    heads = {"example": "#", "text": "Text", "true": "True", "original": "Original", "original_prob": "Orig. prob",
             "variant": "Variant", "variant_prob": "Var. prob", "effect": "Effect"}
    for v in variants[1:]:
        p = store.predictions(run_id, v["idx"]) if v.get("status") == VariantStatus.DONE else None
        if not p or len(p.get("preds") or []) != len(original["preds"]):
            continue
        diff = rd.confusion(y, p["preds"], n) - cm_orig
        changed = rd.changed_examples(examples, original, p)
        counts = changed["effect"].value_counts()
        parts.append(f"<h3>{_esc(v['name'])}: {len(changed)} of {len(y)} predictions changed "
                     f"({counts.get('fixed', 0)} fixed, {counts.get('broken', 0)} broken, "
                     f"{counts.get('changed', 0)} wrong either way)</h3>")
        title = f"{v['name']} \u2212 original"
        parts.append(f'<div class="charts"><div>{figure(plots.confusion_diff_heatmap(diff, labels, title))}</div></div>')
        if len(changed):
            shown = changed.head(MAX_CHANGED_ROWS).copy()
            for col in ("original_prob", "variant_prob"):
                shown[col] = shown[col].map(lambda x: f"{x:.3f}" if isinstance(x, float) and math.isfinite(x) else "")
            parts.append(_table(shown, heads, set(heads)))
            if len(changed) > MAX_CHANGED_ROWS:
                parts.append(f"<p>\u2026 and {len(changed) - MAX_CHANGED_ROWS} more (see the dashboard).</p>")
    parts.append("<p>Rows are the true labels, columns the predictions. In a difference, blue cells gained examples "
                 "and red cells lost them.</p>")
    return "".join(parts)


def _headline(variants: list[dict], preds: dict, examples: dict) -> str:
    """The Results page's first sentence (no limits set: the recommendation within noise of the original)."""
    import re

    from profiling.report.recommend import Limits, evaluate, headline
    from profiling.report.uncertainty import accuracy_changes

    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    labels = examples.get("labels") if examples.get("texts") else None
    limits = Limits()
    text = headline(evaluate(variants, limits, accuracy_changes(done, preds, labels)), limits)
    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", _esc(text))
    return f'<p class="headline" style="font-size:1.35em;margin:0.6em 0 1em">{html}</p>'


def build_html(store: RunStore, run_id: str) -> str:
    """The whole report of ``run_id`` as one HTML document (plotly.js inline: opens with no network)."""
    from profiling.report import figures as plots
    from profiling.report import frames as rd
    from profiling.report import runtime_split
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in the store {store.path}")
    variants = store.variants(run_id)
    req = run.get("request") or {}
    s = req.get("settings") or {}
    examples = store.examples(run_id)
    original = store.predictions(run_id, 0)
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in variants} if original else {}
    n_labels = len(examples.get("label_names") or []) or None
    df = rd.metrics_frame(variants, preds, examples.get("labels") if examples.get("texts") else None, n_labels)
    figure = _Figures()

    finished = run.get("finished_at") or "\u2014"
    title_line = f"<h1>Compression report: {_esc(req.get('model', '?'))} on {_esc(describe_dataset(req.get('dataset')))}</h1>"
    meta_line = (
        f'<p class="meta">Run <code>{_esc(run_id)}</code> \u00b7 started {_esc(run.get("created_at"))} \u00b7 '
        f"finished {_esc(finished)} \u00b7 status {_esc(run.get('status'))}"
        f" \u00b7 {_esc(s.get('threads', '?'))} thread(s), batch size {_esc(s.get('batch_size', '?'))}, "
        f"{_esc(s.get('repeats', '?'))} repeats after {_esc(s.get('warmup', '?'))} warm-up, "
        f"{_esc(s.get('eval_size', '?'))} evaluation examples</p>"
    )
    body = [title_line, meta_line]
    if run.get("status") in FINISHED_STATUSES and not df.empty:
        body.append(_headline(variants, preds, examples))
    if run.get("status") == RunStatus.FAILED:
        body.append(f'<p class="note">This run failed: {_esc(run.get("error") or "no reason recorded")}</p>')

    body.append("<h2>Summary</h2>")
    if df.empty:
        body.append("<p>No variants recorded.</p>")
    else:
        heads = rd.display_columns(df)
        status = pd.Series(["failed" if s == VariantStatus.FAILED else "" for s in df["status"]])
        body.append(_table(df, heads, {"variant", "techniques", "status"}, status))
        body.append("<p>Ratios are the variant's figure divided by the original's (below 1 = smaller or faster); "
                    "\u0394 accuracy is in percentage points.</p>")
    for who, kind, msg in rd.variant_notes(variants, run):
        body.append(f'<p class="note"><b>{_esc(who)}</b> ({_esc(kind)}): {_esc(msg)}</p>')

    splits = runtime_split.runtime_splits(variants, rd.batch_size_of(df)) if not df.empty else []
    if splits:  # runtime vs int8 share of each int8 variant's gain
        body.append("<h2>Where the int8 gain comes from</h2>")
        split = runtime_split.split_frame(splits)
        body.append(_table(split, {c: c for c in split.columns}, set(split.columns)))
        body.append(f"<p>{_esc(runtime_split.EXPLANATION)}</p>")

    body.append("<h2>Tradeoffs</h2>")
    done = df[df["status"] == VariantStatus.DONE] if not df.empty else df
    if done.empty:
        body.append("<p>No finished variants.</p>")
    else:
        lat = done["latency_b1_median_ms"].dropna()
        log_x = bool(len(lat) and lat.min() > 0 and lat.max() / lat.min() > 10)
        body.append('<div class="charts">')
        lat_fig = plots.tradeoff_scatter(done, "latency_b1_median_ms", log_x=log_x,
                                         title="Accuracy vs latency (batch 1, median)")
        body.append(f"<div>{figure(lat_fig)}</div>")
        body.append(f"<div>{figure(plots.tradeoff_scatter(done, 'disk_mib', title='Accuracy vs size on disk'))}</div>")
        body.append("</div><p>The dashed step line is the Pareto frontier: no other variant is both faster (or "
                    "smaller) and more accurate than the variants on it.</p>")

    body.append("<h2>Memory timelines</h2>")
    timelines = store.timelines(run_id)
    named = {v["name"]: timelines.get(v["idx"], {}) for v in variants}
    if any(tl.get("t") for tl in named.values()):
        body.append(figure(plots.memory_timeline_figure(named)))
        body.append("<p>Resident memory of each variant's own profiling process; diamonds mark the phases (import, "
                    "load, warm-up, latency, evaluation). Click a legend entry to hide a variant.</p>")
    else:
        body.append("<p>No memory samples recorded.</p>")

    body.append("<h2>Prediction changes</h2>")
    body.append(_predictions_section(store, run_id, variants, figure))

    body.append("<h2>Environment fingerprint</h2>")
    env = run.get("env") or {}
    if env:
        env_df = pd.DataFrame(rd.flatten(env), columns=["key", "value"])
        body.append(_table(env_df, {"key": "Key", "value": "Value"}, {"key", "value"}))
    else:
        body.append("<p>No environment recorded.</p>")

    body.append("<h2>Methodology</h2>")
    has_intervals = any(c.endswith("_ci") and df[c].notna().any() for c in df.columns) if not df.empty else False
    body.append(_methodology(run, variants, has_intervals))
    body.append(f'<p class="meta">Written by Compression Explorer (<code>python -m profiling report {_esc(run_id)}'
                "</code>); the charts are interactive (hover, zoom, legend) and need no network.</p>")
    if figure.count == 0:  # no chart at all: still a valid, self-contained page
        log.info("report of run %s has no charts", run_id)
    title = f"Compression report {run_id}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
            f"<body>{''.join(body)}</body></html>\n")


def write_html(store: RunStore, run_id: str, path: Path | str) -> Path:
    """Write the report of ``run_id`` to ``path``; returns the path."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(store, run_id), encoding="utf-8")
    return path
