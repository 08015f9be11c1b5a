"""The "How sure are these numbers?" section of the Results page (frames in profiling/report/uncertainty.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from profiling.measure.stats import ACCURACY_TEST
from profiling.report.uncertainty import (
    RSS_MEANING,
    accuracy_changes,
    memory_frame,
    missed_peaks,
    noisy_measurements,
    trust_frame,
)
from profiling.schema import VariantStatus


def render(run: Mapping[str, Any], variants: list[dict], predictions: Mapping[int, Any] | None,
           examples: Mapping[str, Any] | None) -> None:
    """The "How sure are these numbers?" section of the Results page."""
    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    if not done:
        return
    st.subheader("How sure are these numbers?")
    sizes = [m.get("batch_size") for v in done if (m := v.get("metrics") or {}).get("batch_size")]
    trust = trust_frame(done, int(sizes[0]) if sizes else None)
    if trust.empty:
        st.caption("No raw latency values stored for this run, so no intervals can be shown.")
    else:
        st.caption(
            "Latency medians with a 95 % bootstrap interval. Two variants whose intervals overlap are **within "
            "noise**: neither is ranked faster. **Other CPU use** is the share of the machine's CPU time other "
            "processes took while the figure was measured (more than 10 % flags it noisy)."
        )
        st.dataframe(
            trust,
            hide_index=True,
            key=f"trust_{run.get('id')}",
            column_config={
                "Median (ms)": st.column_config.NumberColumn(format="%.2f"),
                "\u00b1 %": st.column_config.NumberColumn(format="%.1f", help="half the interval, % of the median"),
                "Other CPU use": st.column_config.NumberColumn(format="percent"),
            },
        )
    noisy = noisy_measurements(done)
    if noisy:
        st.warning(
            "Noisy measurements (the machine was busy with other work; rerun on a quieter machine to rank these):\n"
            + "\n".join(f"- {line}" for line in noisy),
            icon=":material/graphic_eq:",
        )
    labels = (examples or {}).get("labels") if (examples or {}).get("texts") else None
    changes = accuracy_changes(done, predictions, labels)
    if changes:
        names = {int(v["idx"]): v.get("name") for v in done}
        st.markdown(
            f"**Accuracy against the original, on the same examples.** {ACCURACY_TEST}\n"
            + "\n".join(
                f"- **{names[i]}**: {ch.text()}; agrees with the original on {ch.agreement:.1%} of {ch.n} examples"
                for i, ch in changes.items()
            )
        )
    mem = memory_frame(done)
    if not mem.empty:
        with st.expander("What the memory figures mean (RSS, USS, the OS's check)"):
            st.markdown(RSS_MEANING)
            missed = missed_peaks(done)
            if missed:
                st.caption("The memory timeline's samples do not reach these peaks (a spike between two samples): "
                           + "; ".join(missed) + ".")
            st.dataframe(
                mem,
                hide_index=True,
                key=f"memtrust_{run.get('id')}",
                column_config={c: st.column_config.NumberColumn(format="%.1f") for c in mem.columns if "MiB" in c},
            )
