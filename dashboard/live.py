"""Shared reads for the views that refresh themselves (the live run, the Results page of an active run, the
measuring queue).

Every session of the server runs its own timers, and they all run in the server's one interpreter: ten sessions
each re-reading a run and rebuilding its tables and figures every second saturate it, and a newly opened page then
waits behind them (measured by ``benchmarks/crowd.py``). So what a timer reads is read once per change of the store
file for all sessions (``st.cache_data`` keyed by the file's stamp, so it is never stale), what it derives (the
results table, the memory figure) is built once per change too, and a view whose content did not change (a queued
run) waits on a cheap change token instead of redrawing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from profiling.schema import ACTIVE_STATUSES, VariantStatus

# A cached read is keyed by the store file's stamp, so it is exact; the time to live only bounds how long an entry
# stays in memory (and covers two writes within the file system's timestamp granularity that left the size equal).
CACHE_TTL_S = 5.0


def store_stamp(path: Path | str) -> tuple[int, ...]:
    """What changes whenever the SQLite store is written: the size and modification time of the file and of its
    write-ahead log (a commit appends to the log; a checkpoint rewrites the file). Missing files count as zeros."""
    out: list[int] = []
    for name in (str(path), f"{path}-wal"):
        try:
            st_ = os.stat(name)
            out += [st_.st_mtime_ns, st_.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def _run_snapshot(path: str, run_id: str, stamp: tuple[int, ...]) -> dict[str, Any] | None:
    from profiling.store.runs import RunStore

    store = RunStore(Path(path))
    run = store.get_run(run_id)
    if run is None:
        return None
    variants = store.variants(run_id)
    timelines = {v["name"]: store.timeline(run_id, v["idx"]) for v in variants}
    return {"run": run, "variants": variants, "stamp": stamp,
            "timelines": {name: tl for name, tl in timelines.items() if tl.get("t")}}


def run_snapshot(store: Any, run_id: str) -> dict[str, Any] | None:
    """``{"run", "variants", "timelines", "stamp"}`` of one run as stored now (None: not in the store), read once
    per store change for every session. An active run whose process is gone is marked failed first (the reaper)."""
    snap = _run_snapshot(str(store.path), run_id, store_stamp(store.path))
    if snap is not None and snap["run"]["status"] in ACTIVE_STATUSES and store.reap_dead_runs():
        snap = _run_snapshot(str(store.path), run_id, store_stamp(store.path))
    return snap


def change_token(snap: dict[str, Any] | None) -> tuple:
    """What a view of the run shows, reduced to a comparable value: the run's status, stage and error, and per
    variant its status, error and how many figures it has (not its progress, which moves all the time)."""
    if snap is None:
        return ()
    run = snap["run"]
    per_variant = tuple((v["name"], v["status"], v.get("error"), len(v.get("metrics") or {})) for v in snap["variants"])
    return (run["status"], run.get("stage"), run.get("error"), per_variant)


def watch_run(store: Any, run_id: str, token: tuple, every_s: float) -> None:
    """A timer that redraws nothing: every ``every_s`` it compares the run's change token with ``token`` (what the
    page drew) and reruns the whole page once it differs."""

    @st.fragment(run_every=every_s)
    def watch() -> None:
        if change_token(run_snapshot(store, run_id)) != token:
            st.rerun()

    watch()


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def _active_records(path: str, stamp: tuple[int, ...]) -> list[dict[str, Any]]:
    from profiling.store.runs import RunStore

    return RunStore(Path(path)).active_records()


def queue(store: Any) -> list[dict[str, Any]]:
    """The measuring queue (profiling.jobs.launcher.queue) from a read shared by every session; which processes are
    alive is checked on every call."""
    from profiling.jobs.launcher import queue as measuring_queue

    return measuring_queue(store, _active_records(str(store.path), store_stamp(store.path)))


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def _results_table(path: str, run_id: str, stamp: tuple[int, ...], compact: bool) -> tuple[Any, dict[str, Any]]:
    from dashboard.run_view import results_table

    snap = _run_snapshot(path, run_id, stamp)
    return results_table(None, run_id, snap["variants"] if snap else [], compact)


def results_table(snap: dict[str, Any], store: Any, compact: bool = True) -> tuple[Any, dict[str, Any]]:
    """The results table of a snapshot (dashboard.run_view.results_table), built once per store change."""
    return _results_table(str(store.path), snap["run"]["id"], snap["stamp"], compact)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=32, show_spinner=False)
def _memory_figure(path: str, run_id: str, stamp: tuple[int, ...]) -> dict[str, Any] | None:
    from dashboard.run_view import memory_figure

    snap = _run_snapshot(path, run_id, stamp)
    if not snap or not snap["timelines"]:
        return None
    running = next((v["name"] for v in snap["variants"] if v["status"] == VariantStatus.PROFILING.value), None)
    return memory_figure(snap["timelines"], running).to_plotly_json()


def memory_figure(snap: dict[str, Any], store: Any) -> dict[str, Any] | None:
    """The live memory timeline of a snapshot as a Plotly figure dict (None: no timeline yet), built once per
    store change."""
    return _memory_figure(str(store.path), snap["run"]["id"], snap["stamp"])
