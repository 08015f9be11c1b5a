"""Results page: the user's limits, which variants meet them, the recommendation and what rules out each other one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from profiling.report.recommend import RULE, Limits, evaluate, headline, limit_kind, p95_footnote, summary
from profiling.schema import VariantStatus

_INPUTS = (
    ("max_accuracy_drop_pts", "Max accuracy drop (points)", 0.5, ("Largest accuracy loss against the original you "
     "accept, in percentage points (1 = 0.80 \u2192 0.79). Empty: no limit.")),
    ("max_disk_mib", "Max size on disk (MiB)", 1.0, "Largest model folder you accept. Empty: no limit."),
    ("max_p95_ms", "Max p95 latency, batch 1 (ms)", 1.0, ("95 % of single requests must be at least this fast "
     "(p95 of the raw timings). Empty: no limit.")),
    ("max_ram_mib", "Max peak RAM (MiB)", 10.0, ("Largest peak resident memory of the serving process. Empty: no "
     "limit.")),
)


def _cell(value: float | None, fmt: str) -> str:
    return "\u2014" if value is None else fmt.format(value)


def verdict_frame(verdicts: list) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        rows.append({
            "": "\u2605 recommended" if v.recommended else ("\u2713 meets all" if v.meets else "\u2717 ruled out"),
            "Variant": v.name,
            "Accuracy drop (pts)": _cell(v.accuracy_drop_pts, "{:+.1f}"),
            "Disk (MiB)": _cell(v.disk_mib, "{:.1f}"),
            "p95 b1 (ms)": _cell(v.p95_ms, "{:.1f}"),
            "Peak RAM (MiB)": _cell(v.peak_ram_mib, "{:.0f}"),
            "Ruled out by": ", ".join(dict.fromkeys(limit_kind(r) for r in v.reasons)),  # in full below the table
        })
    return pd.DataFrame(rows)


def _limits_key(key: str, run_id: str) -> str:
    return f"rec_{key}_{run_id}"


def current_limits(run_id: str) -> Limits:
    """The limits typed in the recommendation section (kept in the session), none before any was typed."""
    values = {key: st.session_state.get(_limits_key(key, run_id)) for key, *_ in _INPUTS}
    try:
        return Limits(**{k: (float(v) if v is not None else None) for k, v in values.items()})
    except ValueError:
        return Limits()


def accuracy_changes(store, run_id: str, variants: list[dict]) -> dict:
    """idx -> AccuracyChange against the original, from the stored predictions ({} without them)."""
    from profiling.report.uncertainty import accuracy_changes as changes_of

    examples = store.examples(run_id)
    if not examples.get("texts") or not store.predictions(run_id, 0):
        return {}
    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    preds = {v["idx"]: store.predictions(run_id, v["idx"]) for v in done}
    return changes_of(done, preds, examples.get("labels"))


def render_headline(variants: list[dict], run_id: str, changes: dict) -> None:
    """The first sentence of the Results page: the recommendation under the current limits, or why none."""
    limits = current_limits(run_id)
    verdicts = evaluate(variants, limits, changes)
    with st.container(key="headline"):
        st.markdown(f"#### {headline(verdicts, limits)}" if verdicts else "#### No variant has finished yet.")
        st.caption("Set limits (accuracy, size, p95 latency, RAM) under **Recommendation under your limits** below.")


def render(variants: list[dict], run_id: str, changes: dict | None = None) -> None:
    st.subheader("Recommendation under your limits")
    cols = st.columns(len(_INPUTS))
    values = {}
    for col, (key, label, step, help_text) in zip(cols, _INPUTS, strict=True):
        values[key] = col.number_input(
            label, min_value=0.0, value=None, step=step, placeholder="no limit", key=_limits_key(key, run_id),
            help=help_text,
        )
    try:
        limits = Limits(**{k: (float(v) if v is not None else None) for k, v in values.items()})
    except ValueError as exc:
        st.error(f"Check the limits: {exc}")
        return
    verdicts = evaluate(variants, limits, changes)
    if not verdicts:
        st.info("The recommendation appears when variants have finished.")
        return
    best = next((v for v in verdicts if v.recommended), None)
    (st.success if best else st.warning)(summary(verdicts, limits),
                                         icon=":material/recommend:" if best else ":material/block:")
    with st.container(key="recommendation_table"):
        st.dataframe(verdict_frame(verdicts), hide_index=True, key=f"rec_table_{run_id}",
                     column_config={"Ruled out by": st.column_config.TextColumn(width="large")})
    ruled = [f"- **{v.name}**: " + "; ".join(v.reasons) for v in verdicts if v.reasons]
    if ruled:  # the table names the limits; the figures, in full, here (a table cell would cut them off)
        with st.container(key="ruled_out"):
            st.markdown("**Ruled out:**\n" + "\n".join(ruled))
    st.caption(f"{RULE} Accuracy drop = original's accuracy minus the variant's (negative = better). "
               f"{p95_footnote(verdicts)}.")
