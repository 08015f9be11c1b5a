"""The engine's typed contract: run and variant statuses, and the one registry of the figures a variant's metrics hold.

Standard library only (plus ``compression`` if ever needed), so every layer above may import it. The statuses are
``StrEnum``s: their values are the strings the store holds, and a member compares equal to its plain string, so
store contents and ``status == "done"`` comparisons are unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


# A job (a sweep, a sensitivity map) goes through the same states as a run.
JobStatus = RunStatus


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
