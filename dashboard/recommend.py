"""Results page: the user's limits, which variants meet them, the recommendation and what rules out each other one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from profiling.report.recommend import RULE, Limits, evaluate, summary

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
            "Ruled out by": "; ".join(v.reasons),
        })
    return pd.DataFrame(rows)


def render(variants: list[dict], run_id: str) -> None:
    st.subheader("Recommendation under your limits")
    cols = st.columns(len(_INPUTS))
    values = {}
    for col, (key, label, step, help_text) in zip(cols, _INPUTS, strict=True):
        values[key] = col.number_input(
            label, min_value=0.0, value=None, step=step, placeholder="no limit", key=f"rec_{key}_{run_id}",
            help=help_text,
        )
    try:
        limits = Limits(**{k: (float(v) if v is not None else None) for k, v in values.items()})
    except ValueError as exc:
        st.error(f"Check the limits: {exc}")
        return
    verdicts = evaluate(variants, limits)
    if not verdicts:
        st.info("The recommendation appears when variants have finished.")
        return
    best = next((v for v in verdicts if v.recommended), None)
    (st.success if best else st.warning)(summary(verdicts), icon=":material/recommend:" if best else ":material/block:")
    with st.container(key="recommendation_table"):
        st.dataframe(verdict_frame(verdicts), hide_index=True, key=f"rec_table_{run_id}")
    sources = sorted({v.p95_source for v in verdicts})
    st.caption(f"{RULE} Accuracy drop = original's accuracy minus the variant's (negative = better). p95: "
               f"{'; '.join(sources)}.")
