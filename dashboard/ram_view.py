"""The Run page's estimate of each variant's peak RAM, shown before launch (compression.ram_estimate)."""

from __future__ import annotations

from typing import Any

import streamlit as st


def variant_estimates(model_spec: str | None, variants: list[dict[str, Any]]) -> tuple[int, list[tuple[str, int]]]:
    """(the RAM available now, [(variant name, estimated peak bytes)]); no variants when the parameter count of the
    model is not known before it is built (a Hub id)."""
    from compression import ram_estimate
    from compression.registry import REGISTRY
    from profiling.inputs.spec_structure import spec_format, spec_parameters

    available = ram_estimate.available_bytes()
    params = spec_parameters(model_spec)
    if not params:
        return available, []
    start = spec_format(model_spec)
    out = []
    for v in variants:
        names = [str(c.get("technique")) for c in v.get("chain") or []]
        final = REGISTRY[names[-1]].config_cls.produces if names and names[-1] in REGISTRY else start
        out.append((str(v.get("name")), ram_estimate.chain_estimate(params, names, final)))
    return available, out


def render(model_spec: str | None, variants: list[dict[str, Any]]) -> None:
    """A caption with every variant's estimated peak RAM, and a warning naming those that would be refused."""
    from compression.ram_estimate import gib

    available, estimates = variant_estimates(model_spec, variants)
    if not estimates:
        return
    st.caption(f":material/memory: Estimated peak RAM (build and profile; {gib(available)} available now): "
               + ", ".join(f"{name} {gib(need)}" for name, need in estimates))
    over = [name for name, need in estimates if need > available]
    if over:
        st.warning(f"{', '.join(over)} would need more RAM than the {gib(available)} available here: "
                   "they will be refused before they are built (the other variants run).",
                   icon=":material/memory:")
