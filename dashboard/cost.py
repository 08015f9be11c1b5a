"""Results page: machines needed and cost per million predictions for the user's load and prices."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from profiling.report.cost import ASSUMPTIONS, CostInputs, estimate
from profiling.schema import VariantStatus


def _money(value: float | None, priced: bool) -> str:
    if value is None or not priced:
        return "\u2014"
    return f"{value:,.4f}" if value < 1 else f"{value:,.2f}"


def cost_frame(variants: list[dict], run: dict, load: float, core_price: float | None, gib_price: float | None,
               utilisation: float, headroom: float, machine_cores: int, machine_ram: float) -> pd.DataFrame:
    """One row per finished variant with throughput and peak RAM: replicas, cores, RAM, machines and costs."""
    threads_default = int(((run.get("request") or {}).get("settings") or {}).get("threads") or 1)
    priced = core_price is not None and gib_price is not None
    rows = []
    for v in variants:
        m = v.get("metrics") or {}
        tput, ram = m.get("throughput_per_s"), m.get("peak_rss_mib")
        if v.get("status") != VariantStatus.DONE or not isinstance(tput, int | float) or not isinstance(ram, int | float):
            continue
        if not (math.isfinite(tput) and math.isfinite(ram) and tput > 0 and ram > 0):
            continue
        threads = int(m.get("threads") or threads_default)
        est = estimate(CostInputs(
            throughput_per_s=float(tput), peak_ram_mib=float(ram), threads=threads, load_per_s=load,
            price_core_hour=core_price or 0.0, price_gib_hour=gib_price or 0.0, utilisation=utilisation,
            ram_headroom=headroom, machine_cores=machine_cores, machine_ram_gib=machine_ram,
        ))
        rows.append({
            "Variant": v["name"],
            "Measured /s": f"{tput:,.0f}",
            "Threads": threads,
            "Replicas": est.replicas,
            "Cores": est.cores,
            "RAM (GiB)": f"{est.ram_gib:,.1f}",
            "Machines": est.machines if est.machines is not None else "does not fit",
            "Per machine": f"{est.replicas_per_machine} (by {est.limited_by})",
            "Cost / hour": _money(est.cost_per_hour, priced),
            "Cost / million": _money(est.cost_per_million, priced),
            "Whole machines / million": _money(est.machine_cost_per_million, priced),
        })
    return pd.DataFrame(rows)


def render(variants: list[dict], run: dict) -> None:
    run_id = run["id"]
    st.subheader("What would serving cost?")
    c1, c2, c3 = st.columns(3)
    load = c1.number_input("Load (predictions per second)", min_value=0.1, value=100.0, step=10.0,
                           key=f"cost_load_{run_id}", help="The steady request rate to serve, one text per prediction.")
    core_price = c2.number_input("Price per core-hour", min_value=0.0, value=None, step=0.01, format="%.4f",
                                 placeholder="enter your price", key=f"cost_core_{run_id}",
                                 help="What one CPU core (vCPU) costs per hour on your platform, in your currency.")
    gib_price = c3.number_input("Price per GiB-hour of RAM", min_value=0.0, value=None, step=0.001, format="%.4f",
                                placeholder="enter your price", key=f"cost_gib_{run_id}",
                                help="Your RAM tier: what one GiB of memory costs per hour.")
    with st.expander("Planning margins and machine size"):
        d1, d2, d3, d4 = st.columns(4)
        utilisation = d1.slider("Target utilisation", 0.1, 1.0, 0.7, 0.05, key=f"cost_util_{run_id}",
                                help="Plan each replica for this fraction of its measured throughput (room for "
                                "spikes and queueing).")
        headroom = d2.slider("RAM headroom", 0.0, 1.0, 0.25, 0.05, key=f"cost_head_{run_id}",
                             help="Extra RAM per replica above its measured peak.")
        machine_cores = int(d3.number_input("Cores per machine", 1, 512, 8, key=f"cost_mcores_{run_id}"))
        machine_ram = float(d4.number_input("RAM per machine (GiB)", 1.0, 4096.0, 32.0, key=f"cost_mram_{run_id}"))
    frame = cost_frame(variants, run, float(load), core_price, gib_price, utilisation, headroom, machine_cores,
                       machine_ram)
    if frame.empty:
        st.info("The estimate appears when variants with a measured throughput and peak RAM have finished.")
        return
    if core_price is None or gib_price is None:
        st.caption("Enter both prices to see the costs; replicas and machines do not depend on them.")
    with st.container(key="cost_table"):
        st.dataframe(frame, hide_index=True, key=f"cost_frame_{run_id}")
    st.caption(ASSUMPTIONS)
