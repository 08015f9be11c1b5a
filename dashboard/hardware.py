"""The CPU's instruction sets and thread count, shown with a run and on the Run page, and per-technique advice."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from profiling.measure.hardware import CpuInfo, advice_for, advice_lines, detect, recipe_line

ADVICE_ICON = ":material/memory:"


@functools.lru_cache(maxsize=1)
def this_cpu() -> CpuInfo:
    """This machine's CPU (read once per dashboard process)."""
    return detect()


def technique_advice(technique: str, options: Mapping[str, Any] | None = None) -> str | None:
    """The warning for ``technique`` on this machine's CPU, or None (used by the technique picker)."""
    return advice_for(technique, this_cpu(), options)


def run_cpu(run: Mapping[str, Any]) -> CpuInfo | None:
    """The CPU a run was measured on, from its stored environment fingerprint (None when not recorded)."""
    env = run.get("env") or {}
    return CpuInfo.from_json(env) if env.get("cpu_flags") or env.get("cpu_model") else None


def run_advice(run: Mapping[str, Any], variants: list[dict]) -> list[tuple[str, str]]:
    """(technique, warning) for the techniques used in the run's variants, judged on the run's own CPU."""
    cpu = run_cpu(run)
    if cpu is None:
        return []
    names = [str(step.get("technique")) for v in ((run.get("request") or {}).get("variants") or [])
             for step in v.get("chain") or []]
    return advice_lines(names, cpu)


def render(run: Mapping[str, Any] | None = None, variants: list[dict] | None = None) -> None:
    """With a run: the CPU it was measured on and warnings for its techniques. Without: this machine's CPU."""
    import streamlit as st

    if run is None:
        st.caption(f"{ADVICE_ICON} **This CPU:** {this_cpu().summary()}. Techniques this CPU cannot speed up "
                   f"show a warning below them. {recipe_line(this_cpu())}.")
        return
    cpu = run_cpu(run)
    if cpu is None:
        st.caption("The CPU of this run was not recorded.")
        return
    st.caption(f"{ADVICE_ICON} **Measured on:** {cpu.summary()}")
    lines = run_advice(run, variants or [])
    if lines:
        st.warning("\n".join(f"- **{name}**: {text}" for name, text in lines), icon=":material/speed:")
