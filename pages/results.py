"""Results page: the reference table, tradeoff scatters, memory timelines and changed predictions of one run."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from dashboard import hardware, live, mlflow_box, queue_view, run_choices, share, sweep, timeline, trust
from dashboard.guard import page_guard
from profiling.report import figures as plots
from profiling.report import frames as rd
from profiling.report import runtime_split
from profiling.schema import ACTIVE_STATUSES

RUN_KEY = "results_run"
REFRESH_S = 3.0
ANY = "any"
_STATIC = {"displayModeBar": False}  # confusion matrices: nothing to zoom, and the bar would hide the title


def _store():
    """The shared RunStore (dashboard.state caches it); a direct one if that module is not there."""
    try:
        from dashboard.state import get_store
    except ImportError:
        from profiling.store.runs import RunStore

        return RunStore()
    return get_store()


# ---- choosing the run ----------------------------------------------------------------------------------------


def _on_pick() -> None:
    picked = st.session_state.get(RUN_KEY)
    if picked:
        st.query_params["run"] = picked


def _pick_run(runs: list[dict]) -> str | None:
    """The run in ``?run=``, else the one picked before, else the latest; a clear message for an unknown id."""
    ids = [r["id"] for r in runs]
    labels = {r["id"]: rd.run_label(r) for r in runs}
    wanted = st.query_params.get("run")
    if wanted and wanted not in ids:
        st.error(
            f"There is no run with id `{wanted}` in the run store (it may have been deleted, or the link is "
            "mistyped). Pick one of the stored runs below."
        )
        st.session_state[RUN_KEY] = None  # a pick sets ?run= in its callback, before the next script run
    elif wanted:
        st.session_state[RUN_KEY] = wanted
    elif st.session_state.get(RUN_KEY) not in ids:
        st.session_state[RUN_KEY] = ids[0]
    return st.selectbox(
        "Run",
        ids,
        key=RUN_KEY,
        format_func=lambda i: labels.get(i, i),
        on_change=_on_pick,
        placeholder="Pick a run",
        help="Every stored run, newest first. The page URL "
        "(?run=<id>) opens the chosen run directly, so it can be shared or bookmarked.",
    )


# ---- sections ------------------------------------------------------------------------------------------------


def _duration(start: str | None, end: str | None) -> str:
    try:
        secs = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return ""
    return f"{int(secs // 60)} min {int(secs % 60)} s" if secs >= 60 else f"{secs:.0f} s"


def _header(run: dict, variants: list[dict]) -> None:
    req = run.get("request") or {}
    s = req.get("settings") or {}
    from profiling.store.runs import describe_dataset

    took = _duration(run.get("created_at"), run.get("finished_at"))
    parts = [
        f"**Model** `{req.get('model', '?')}`",
        f"**Dataset** {describe_dataset(req.get('dataset'))}",
        f"**Started** {str(run.get('created_at', '?')).replace('T', ' ')[:19]}",
    ]
    if took:
        parts.append(f"**Took** {took}")
    st.markdown(" \u00b7 ".join(parts))
    imported = (run.get("env") or {}).get("imported") or {}
    if imported:  # measured elsewhere: say where it came from (and when it is a second copy)
        st.caption(f":material/move_to_inbox: Imported from a bundle of run {imported.get('from_run', '?')} "
                   f"(exported {str(imported.get('exported_at', '?'))[:16]})"
                   + (f"; **a copy** of run {imported['copy_of']}, already in this store" if imported.get("copy_of")
                      else "") + ".")
    if s:
        st.caption(
            f"{s.get('threads', '?')} thread(s) \u00b7 batch size {s.get('batch_size', '?')} \u00b7 "
            f"{s.get('repeats', '?')} timed repeats after {s.get('warmup', '?')} warm-up \u00b7 "
            + (f"then more until the median is known to \u00b1{s['ci_target_pct']} % (budget {s.get('latency_budget_s')} s"
               " per variant) \u00b7 " if s.get("ci_target_pct") else "")
            + f"{s.get('eval_size', '?')} evaluation examples \u00b7 seed {s.get('seed', '?')}"
        )
    status = run.get("status")
    n_done = sum(v.get("status") == "done" for v in variants)
    if status == "failed":
        st.error(
            f"This run failed: {run.get('error') or 'no reason recorded'}. "
            + (f"Showing the {n_done} variant(s) that finished before it stopped." if n_done else "")
        )
    elif status in ("queued", "running"):
        stage = run.get("stage") or status
        st.info(
            f"This run is still {status} ({stage}): showing the {n_done} of {len(variants)} variant(s) finished "
            "so far. The page updates itself as the run goes on.",
            icon=":material/hourglass_top:",
        )


def _table(df: pd.DataFrame, run_id: str) -> None:
    st.subheader("Summary")
    table = rd.table_frame(df)
    heads = rd.display_columns(df)
    fmt: dict[str, st.column_config.Column] = {}
    for key, head in heads.items():
        if key in rd.RATIOS:
            fmt[head] = st.column_config.NumberColumn(head, format="%.2f\u00d7", help="variant / original")
        elif key == rd.ACCURACY_DELTA[0]:
            fmt[head] = st.column_config.NumberColumn(
                head, format="%+.1f", help="accuracy minus the original's, in percentage points"
            )
        elif key in ("accuracy", "macro_f1", "agreement"):
            fmt[head] = st.column_config.NumberColumn(head, format="%.3f")
        elif key == "param_count":
            fmt[head] = st.column_config.NumberColumn(head, format="localized")
        elif key in rd.FIGURES:
            fmt[head] = st.column_config.NumberColumn(head, format="%.1f" if key != "load_time_s" else "%.2f")
    fmt["Variant"] = st.column_config.TextColumn("Variant", pinned=True)
    with st.container(key="summary_table"):
        st.dataframe(table, hide_index=True, column_config=fmt, key=f"table_{run_id}", placeholder="\u2014")
    st.download_button(
        "Download the table as CSV",
        table.to_csv(index=False).encode(),
        icon=":material/download:",
        file_name=f"compression-results-{run_id}.csv",
        mime="text/csv",
        key=f"csv_{run_id}",
    )


def _notes(variants: list[dict], run: dict) -> None:
    notes = rd.variant_notes(variants, run)
    failed = [f"**{n}** {msg}" for n, kind, msg in notes if kind == "failed"]
    warnings = [f"**{n}**: {msg}" for n, kind, msg in notes if kind == "warning"]
    infos = [f"**{n}**: {msg}" for n, kind, msg in notes if kind == "info"]
    if failed:
        st.error("\n".join(f"- {line}" for line in failed))
    if warnings:
        st.warning("\n".join(f"- {line}" for line in warnings))
    if len(infos) > 3:  # a long list of notes stays out of the way until asked for
        with st.expander(f"Notes on {len(infos)} variant(s)"):
            st.caption("\n".join(f"- {line}" for line in infos))
    elif infos:
        st.caption("\n".join(f"- {line}" for line in infos))


def _int8_split(variants: list[dict], df: pd.DataFrame, run_id: str) -> None:
    splits = runtime_split.runtime_splits(variants, rd.batch_size_of(df))
    if not splits:
        return
    st.subheader("Where the int8 gain comes from")
    st.caption(runtime_split.EXPLANATION)
    with st.container(key="int8_split"):
        st.dataframe(
            runtime_split.split_frame(splits),
            hide_index=True,
            key=f"int8_split_{run_id}",
            column_config={
                "Compared": st.column_config.TextColumn(help="PyTorch fp32 \u2192 runtime fp32 \u2192 int8"),
                "Share from the runtime": st.column_config.TextColumn(help=runtime_split.SHARE_HELP),
            },
        )


def _frontier(df: pd.DataFrame, run_id: str) -> None:
    """The picture first: accuracy against latency with the Pareto frontier, full width, under the headline."""
    done = df[df["status"] == "done"]
    if done.empty:
        st.info("The tradeoff plots appear when the first variant has finished.")
        return
    lat = done["latency_b1_median_ms"].dropna()
    spread = float(lat.max() / lat.min()) if len(lat) and lat.min() > 0 else 1.0
    log_x = st.toggle(
        "Log scale for latency",
        value=spread > 10,  # on by default when the fastest variant is 10x faster than the slowest
        key=f"logx_{run_id}",
        help="Useful when one variant is much slower than the rest (on by default when they differ 10x or more).",
    )
    fig = plots.tradeoff_scatter(done, "latency_b1_median_ms", log_x=log_x, title="Accuracy vs latency (batch 1, median)")
    with st.container(key="frontier_chart"):
        st.plotly_chart(fig, key=f"scatter_lat_{run_id}")
    from dashboard import chart_export

    with st.container(key="frontier_export"):
        chart_export.buttons(fig, f"accuracy-vs-latency-{run_id}", f"export_lat_{run_id}")


def _tradeoffs(df: pd.DataFrame, run_id: str) -> None:
    done = df[df["status"] == "done"]
    if done.empty:
        return
    st.subheader("Tradeoffs")
    fig = plots.tradeoff_scatter(done, "disk_mib", title="Accuracy vs size on disk")
    st.plotly_chart(fig, key=f"scatter_disk_{run_id}")
    from dashboard import chart_export

    chart_export.buttons(fig, f"accuracy-vs-size-{run_id}", f"export_disk_{run_id}")


def _memory(store, run_id: str, variants: list[dict]) -> None:
    st.subheader("Memory timelines")
    timelines = store.timelines(run_id)
    named = {v["name"]: timelines.get(v["idx"], {}) for v in variants}
    have = [n for n, tl in named.items() if tl.get("t")]
    if not have:
        st.info("No memory samples recorded yet.")
        return
    running = next((v["name"] for v in variants if v.get("status") in ("building", "profiling")), None)
    chosen = st.multiselect(
        "Variants to overlay",
        have,
        default=have,
        key=f"mem_{run_id}",
        help="Resident memory of each variant's own profiling process, sampled 20 times a "
        "second; diamonds mark the phases (import, load, warm-up, latency, evaluation).",
    )
    aligned = running is None and st.toggle(
        "Align the phases", value=True, key=f"mem_aligned_{run_id}",
        help="Each phase (import, load, warm-up, latency, evaluation) one slot wide, whatever it lasted, so a "
        "short ONNX run and a long PyTorch one compare phase by phase. Off: seconds since each process started.")
    if aligned:
        from profiling.measure.stats import finite_or_nan

        peaks = {v["name"]: (finite_or_nan((v.get("metrics") or {}).get("peak_rss_mib")),
                             (v.get("metrics") or {}).get("peak_rss_phase"),
                             (v.get("metrics") or {}).get("peak_rss_source")) for v in variants}
        fig = plots.memory_by_phase_figure(named, peaks, selected=chosen)
        with st.container(key="memory_by_phase"):
            st.plotly_chart(fig, key=f"memphase_{run_id}")
        from dashboard import chart_export

        chart_export.buttons(fig, f"memory-by-phase-{run_id}", f"export_mem_{run_id}")
    else:
        st.plotly_chart(plots.memory_timeline_figure(named, running=running, selected=chosen),
                        key=f"memfig_{run_id}")


def _set_pair(true_key: str, pred_key: str, chart_key: str, labels: list[str]) -> None:
    """Click on a cell of the difference heatmap: filter the table to that (true, predicted) pair."""
    state = st.session_state.get(chart_key)
    cell = plots.cell_from_selection((state or {}).get("selection") if state else None, labels)
    if cell is None:
        st.session_state[true_key] = ANY
        st.session_state[pred_key] = ANY
    else:
        st.session_state[true_key] = labels[cell[0]]
        st.session_state[pred_key] = labels[cell[1]]


def _clear_pair(true_key: str, pred_key: str) -> None:
    st.session_state[true_key] = ANY
    st.session_state[pred_key] = ANY


def _predictions(store, run_id: str, variants: list[dict]) -> None:
    st.subheader("Prediction changes")
    examples = store.examples(run_id)
    labels = [str(x) for x in examples.get("label_names") or []]
    original = store.predictions(run_id, 0)
    if not examples.get("texts") or not labels or not original:
        st.info("The confusion matrices appear when the original model has been evaluated.")
        return
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in variants[1:] if v.get("status") == "done"}
    preds = {i: p for i, p in preds.items() if p and len(p.get("preds") or []) == len(original["preds"])}
    names = {v["idx"]: v["name"] for v in variants}
    y = examples["labels"]
    n = len(labels)
    cm_orig = rd.confusion(y, original["preds"], n)
    if not preds:
        st.plotly_chart(plots.confusion_heatmap(cm_orig, labels, "Original"), key=f"cm_orig_only_{run_id}")
        st.info("The comparison appears when a compressed variant has finished.")
        return
    changes = {i: rd.changed_examples(examples, original, p) for i, p in preds.items()}
    options = list(preds)
    cmp_key = f"cmp_{run_id}"
    if st.session_state.get(cmp_key) not in options:  # default: the variant that changed the most predictions
        st.session_state[cmp_key] = max(options, key=lambda i: (len(changes[i]), -i))
    idx = st.selectbox(
        "Variant to compare with the original",
        options,
        key=cmp_key,
        format_func=lambda i: f"{names[i]} ({len(changes[i])} changed predictions)",
    )
    labels_opt = [ANY, *labels]
    tkey, pkey, ckey = f"pair_true_{run_id}_{idx}", f"pair_pred_{run_id}_{idx}", f"cm_diff_{run_id}_{idx}"
    for k in (tkey, pkey):
        if st.session_state.get(k) not in labels_opt:
            st.session_state[k] = ANY
    true_sel, pred_sel = st.session_state[tkey], st.session_state[pkey]
    selected = (labels.index(true_sel), labels.index(pred_sel)) if ANY not in (true_sel, pred_sel) else None

    cm_var = rd.confusion(y, preds[idx]["preds"], n)
    c1, c2, c3 = st.columns(3)
    with c1:
        st.plotly_chart(plots.confusion_heatmap(cm_orig, labels, "Original"), key=f"cm_orig_{run_id}", config=_STATIC)
    with c2:
        st.plotly_chart(
            plots.confusion_heatmap(cm_var, labels, names[idx]), key=f"cm_var_{run_id}_{idx}", config=_STATIC
        )
    with c3:
        st.plotly_chart(
            plots.confusion_diff_heatmap(
                cm_var - cm_orig, labels, title=f"{names[idx]} \u2212 original", selected=selected
            ),
            key=ckey,
            config=_STATIC,
            on_select=lambda: _set_pair(tkey, pkey, ckey, labels),
            selection_mode="points",
        )
    st.caption(
        "Rows are the true labels, columns the predictions. In the difference, blue cells gained examples "
        "and red cells lost them. Click a cell to list the examples that moved into or out of it."
    )

    changed = changes[idx]
    f1, f2, f3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    f1.selectbox("True label", labels_opt, key=tkey, help="Only examples with this true label.")
    f2.selectbox(
        "Predicted as (by the original or the variant)",
        labels_opt,
        key=pkey,
        help="Only examples that the original or the variant assigned to this class.",
    )
    f3.button("Show all", key=f"clear_{run_id}_{idx}", on_click=_clear_pair, args=(tkey, pkey))
    shown = rd.filter_pair(
        changed,
        labels.index(st.session_state[tkey]) if st.session_state[tkey] != ANY else None,
        labels.index(st.session_state[pkey]) if st.session_state[pkey] != ANY else None,
    )
    total = len(y)
    counts = changed["effect"].value_counts()
    st.markdown(
        f"**{len(changed)} of {total} examples** changed prediction "
        f"({counts.get('fixed', 0)} fixed, {counts.get('broken', 0)} broken, "
        f"{counts.get('changed', 0)} wrong either way); **{len(shown)} shown**."
    )
    if changed.empty:
        st.success("The variant predicts exactly the same classes as the original on every example.")
    with st.container(key="changed_examples"):
        st.dataframe(
            shown.drop(columns=["true_idx", "original_idx", "variant_idx"]),
            hide_index=True,
            key=f"changed_{run_id}",
            column_config={
                "example": st.column_config.NumberColumn("#", help="position in the evaluation sample", width="small"),
                "text": st.column_config.TextColumn("Text", width="large"),
                "true": st.column_config.TextColumn("True", width="small"),
                "original": st.column_config.TextColumn("Original", width="small", help="the original's prediction"),
                "original_prob": st.column_config.NumberColumn(
                    "Orig. prob", format="%.3f", width="small", help="the original's probability for its prediction"
                ),
                "variant": st.column_config.TextColumn("Variant", width="small", help=f"{names[idx]}'s prediction"),
                "variant_prob": st.column_config.NumberColumn(
                    "Var. prob", format="%.3f", width="small", help=f"{names[idx]}'s probability for its prediction"
                ),
                "effect": st.column_config.TextColumn(
                    "Effect",
                    help="fixed: the variant is now right; broken: the original was right; changed: wrong either way",
                ),
            },
        )


def _environment(run: dict) -> None:
    hardware.render(run)  # the CPU's instruction sets and warnings for techniques it cannot speed up
    with st.expander("Environment fingerprint and the exact request"):
        env = run.get("env") or {}
        if env:
            st.dataframe(pd.DataFrame(rd.flatten(env), columns=["key", "value"]), hide_index=True)
        else:
            st.caption("No environment recorded (yet).")
        st.caption(
            "The exact request of this run: model, dataset, every variant's technique chain with its settings, and the "
            f"measurement settings. `python -m profiling show {run.get('id', '<id>')}` prints the table in a terminal."
        )
        st.json(run.get("request") or {}, expanded=False)


# ---- the page ------------------------------------------------------------------------------------------------


def show_run(store, run_id: str) -> None:
    """Everything stored for the run; called live (a fragment) while it runs."""
    run = store.get_run(run_id)
    if run is None:
        st.error(f"The run `{run_id}` is no longer in the store (deleted from another tab?).")
        return
    variants = store.variants(run_id)
    _header(run, variants)
    if not variants:
        st.info("This run has no variants recorded yet.")
        return
    original = store.predictions(run_id, 0)
    examples = store.examples(run_id)
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in variants} if original else {}
    n_labels = len(examples.get("label_names") or []) or None
    df = rd.metrics_frame(variants, preds, examples.get("labels") if examples.get("texts") else None, n_labels)
    from dashboard import recommend

    changes = recommend.accuracy_changes(store, run_id, variants) if original else {}
    if run.get("status") in ("done", "failed"):
        recommend.render_headline(variants, run_id, changes)  # one sentence: the recommendation, or why none
    _frontier(df, run_id)
    _table(df, run_id)
    trust.render(run, variants, preds, examples)  # intervals, noise verdicts, accuracy tests, RSS vs USS
    _notes(variants, run)
    _int8_split(variants, df, run_id)  # runtime vs int8 share of each int8 variant's gain
    _tradeoffs(df, run_id)
    _memory(store, run_id, variants)
    timeline.render(store, run_id, variants)  # where the run's time went, per variant (profiling.measure.timing)
    _predictions(store, run_id, variants)
    _environment(run)
    share.run_extras(store, run, variants, changes)
    mlflow_box.render(store, run)  # only when mlflow is installed
    if run.get("status") in ("done", "failed"):
        run_choices.new_run_button(run)
    sweep.render_workloads(variants)  # the run's real-text / bucketed / fixed-shape workloads, if any
    sweep.render(store, run_id)  # batch/sequence/threads sweeps: launch one, follow it, the stored ones


def _guard():
    """The page guard with the Results page's words (the presenter never sees a traceback)."""
    return page_guard(
        "this run",
        headline="The Results page could not show this run",
        advice="Nothing stored was changed; pick another run or reload the page.",
    )


def main() -> None:
    st.title("Results")
    store = _store()
    queue_view.render(store)
    runs = store.list_runs()
    if not runs:
        st.info(
            "No runs yet. Open the **Run** page, choose a model, a dataset and techniques, and click "
            "**Launch**: the results of the sweep appear here as the variants finish.",
            icon=":material/info:",
        )
        return
    run_id = share.shared_run(runs) if share.shared_view() else _pick_run(runs)
    if run_id is None:
        return
    status = next((r["status"] for r in runs if r["id"] == run_id), None)
    if status not in ACTIVE_STATUSES:
        show_run(store, run_id)
        return
    # An active run: drawn once, then redrawn when what the page shows changes (a variant finishes, the run's
    # stage moves on), checked every REFRESH_S against a read shared by every session (dashboard.live).
    token = live.change_token(live.run_snapshot(store, run_id))
    show_run(store, run_id)
    live.watch_run(store, run_id, token, REFRESH_S)


with _guard():  # goes through app.py first when this page was started without it
    main()
