"""The engine's typed contract: run and variant statuses, and the one registry of the figures a variant's metrics hold.

Standard library only (plus ``compression`` if ever needed), so every layer above may import it. The statuses are
``StrEnum``s: their values are the strings the store holds, and a member compares equal to its plain string, so
store contents and ``status == "done"`` comparisons are unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, TypeVar


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# A job (a sweep, a sensitivity map) goes through the same states as a run.
JobStatus = RunStatus
# The states of a run or job that still has work ahead, and those it ends in.
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES = (RunStatus.DONE, RunStatus.FAILED)


class JobKind(enum.StrEnum):
    """The long jobs besides runs, launched and stored the same way (profiling.jobs.launcher)."""

    SWEEP = "sweep"
    SENSITIVITY = "sensitivity"


class VariantStatus(enum.StrEnum):
    PENDING = "pending"
    BUILDING = "building"
    PROFILING = "profiling"
    DONE = "done"
    FAILED = "failed"


_S = TypeVar("_S", RunStatus, VariantStatus)


def status_of(kind: type[_S], value: Any, fallback: _S) -> _S:
    """``value`` (a status string from the store) as a member of ``kind``; ``fallback`` for anything else (a store
    written by a future version, a damaged row), so a record never carries a status no page knows."""
    try:
        return kind(value)
    except ValueError:
        return fallback


# ---- the records the store returns (dicts, so pages, bundles and JSON read them as before) ----------------------


class _RunFields(TypedDict):
    id: str
    created_at: str
    finished_at: str | None
    status: RunStatus
    error: str | None
    stage: str | None


class RunRecord(_RunFields):
    """One run (``RunStore.get_run``): its request as launched and the environment it was measured in."""

    request: dict[str, Any]
    env: dict[str, Any]
    pid: int | None


class RunSummary(_RunFields):
    """One line of ``RunStore.list_runs``: what the History page and the run pickers show."""

    model: str
    dataset: str
    techniques: list[str]
    n_variants: int
    n_done: int
    imported: dict[str, Any] | None


class VariantRecord(TypedDict):
    """One variant of a run (``RunStore.variants``); ``metrics`` holds the figures of ``METRICS`` and more."""

    idx: int
    name: str
    lineage: list[str]
    chain: list[dict[str, Any]]
    status: VariantStatus
    stage: str | None
    progress: float
    error: str | None
    metrics: dict[str, Any]
    notes: list[str]
    artifact: str | None
    started_at: str | None
    finished_at: str | None


class JobRecord(TypedDict):
    """One long job besides a run (a sweep or a sensitivity map; ``RunStore.get_job``)."""

    id: str
    kind: str
    run_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    started_ts: float | None
    finished_ts: float | None
    status: RunStatus
    stage: str | None
    progress: float
    error: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    pid: int | None


@dataclass(frozen=True)
class Metric:
    """One figure of a variant's stored metrics: ``key`` in the store, ``label`` shown in the tables (with its unit;
    "bN" is replaced by the real batch size where the batch size is known), ``fmt`` for plain-text tables, and which
    direction is ``better`` (None: neither)."""

    key: str
    label: str
    unit: str
    fmt: str
    better: Literal["lower", "higher"] | None


# The figures of the reference table (profiling.report.tables) and the Results table (profiling.report.frames),
# in display order.
METRICS: tuple[Metric, ...] = (
    Metric("peak_rss_mib", "Peak RAM (MiB)", "MiB", "{:.0f}", "lower"),
    Metric("disk_mib", "Disk (MiB)", "MiB", "{:.1f}", "lower"),
    Metric("load_time_s", "Load (s)", "s", "{:.2f}", "lower"),
    Metric("first_call_ms", "First call (ms)", "ms", "{:.1f}", "lower"),
    Metric("latency_b1_median_ms", "Latency b1 median (ms)", "ms", "{:.1f}", "lower"),
    Metric("latency_b1_p90_ms", "Latency b1 p90 (ms)", "ms", "{:.1f}", "lower"),
    Metric("latency_bN_median_ms", "Latency bN median (ms)", "ms", "{:.1f}", "lower"),
    Metric("latency_bN_p90_ms", "Latency bN p90 (ms)", "ms", "{:.1f}", "lower"),
    Metric("throughput_per_s", "Throughput (/s)", "/s", "{:.0f}", "higher"),
    Metric("accuracy", "Accuracy", "", "{:.3f}", "higher"),
    Metric("macro_f1", "Macro-F1", "", "{:.3f}", "higher"),
    Metric("agreement", "Agreement", "", "{:.3f}", "higher"),
    Metric("param_count", "Params", "", "{:.0f}", "lower"),
)
# Numeric settings stored among the metrics but not shown as figures.
SETTING_METRICS: tuple[str, ...] = ("threads", "batch_size")

_BY_KEY = {m.key: m for m in METRICS}
_BY_LABEL = {m.label: m for m in METRICS}
if len(_BY_KEY) != len(METRICS) or len(_BY_LABEL) != len(METRICS):
    raise RuntimeError("profiling.schema.METRICS: duplicate key or label")


def metric(key: str) -> Metric:
    """The registry entry for a metrics key (KeyError naming the key if unknown)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}") from None


def label_of(key: str) -> str:
    return metric(key).label


def key_of(label: str) -> str:
    """The metrics key shown under ``label`` (the inverse of label_of)."""
    try:
        return _BY_LABEL[label].key
    except KeyError:
        raise KeyError(f"unknown metric label {label!r}") from None
