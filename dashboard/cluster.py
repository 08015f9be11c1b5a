"""The Run page's optional Ray cluster address: empty measures on this machine (the local executor)."""

from __future__ import annotations

import streamlit as st

from profiling.jobs.executor import ExecutorError, check_address

FIELD_HELP = ("Leave empty to measure on this machine, one variant at a time. With the address of a Ray cluster "
              "(HOST:PORT as 'ray start --head' prints it, ray://HOST:PORT, or auto for a cluster started on this "
              "machine), every variant is built and measured on a node offering the 'bench_node' resource, alone on "
              "it; the data folder must be shared by every node.")


def cluster_picker() -> tuple[dict, list[str]]:
    """The request's executor fields (``{}`` for this machine) and the problems to fix before launching."""
    with st.expander("Run on a Ray cluster (optional)"):
        address = st.text_input("Ray cluster address", key="ray_address", placeholder="HOST:PORT",
                                help=FIELD_HELP).strip()
        if not address:
            return {}, []
        try:
            address = check_address(address)
        except ExecutorError as exc:
            st.error(str(exc), icon=":material/error:")
            return {}, [str(exc)]
        st.caption(f"Variants are measured on the Ray cluster at {address}, each alone on a bench node.")
        return {"executor": "ray", "ray_address": address}, []
