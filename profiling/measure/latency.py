"""Latency timing helpers: perf_counter timing of calls, summaries of the raw values, and the CPU time other
processes took during a measurement."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def time_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Run ``fn`` once; return (elapsed milliseconds, its result)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000.0, result


def repeat_ms(
    fn: Callable[[int], Any], repeats: int, on_each: Callable[[int, float], None] | None = None
) -> list[float]:
    """Call ``fn(i)`` for i in range(repeats); return each call's milliseconds (raw, in order).

    ``on_each(i, ms)`` runs after each timed call, outside the timed region (e.g. progress reporting).
    """
    raw = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        ms = (time.perf_counter() - start) * 1000.0
        raw.append(ms)
        if on_each is not None:
            on_each(i, ms)
    return raw


def summarize(raw_ms: Sequence[float]) -> dict[str, float | int]:
    """Median, p90, p99 (numpy linear percentiles), mean, sample std (0 for one value), min, max and n."""
    values = np.asarray(raw_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency values to summarize")
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(values.size),
    }


# ---- CPU taken by other processes during a measurement -------------------------------------------------------------

NOISY_OTHER_FRACTION = 0.10  # other processes used > 10 % of the machine's CPU time during the window
NOISY_STEAL_FRACTION = 0.02  # the hypervisor took > 2 % (steal)
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest time is already inside user)


def read_proc_stat(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy seconds, steal seconds) of the whole machine since boot from /proc/stat's "cpu" line; None if absent."""
    try:
        with open(path) as fh:
            line = fh.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != "cpu" or len(parts) < 9:
        return None
    ticks = [int(v) for v in parts[1:]]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return sum(ticks[i] for i in _BUSY_FIELDS) / hz, ticks[7] / hz


class CpuWindow:
    """CPU time other processes took while this process measured: the machine's busy CPU time (/proc/stat,
    steal included) minus this process's own CPU time, over the window, as a fraction of wall time x cores.

    ``stop()`` returns ``{other_cpu_frac, steal_frac, noisy}`` (values None where /proc/stat is missing). The
    profiler's own RSS sampler counts as another process (it costs about 1 % of one core).
    """

    def __init__(self, cores: int | None = None, stat_path: str = "/proc/stat") -> None:
        self.cores = cores or os.cpu_count() or 1
        self.stat_path = stat_path
        self._start = self._read()

    def _read(self) -> tuple[float, tuple[float, float] | None, float]:
        t = os.times()
        return time.perf_counter(), read_proc_stat(self.stat_path), t.user + t.system

    def stop(self) -> dict[str, Any]:
        wall0, stat0, own0 = self._start
        wall1, stat1, own1 = self._read()
        wall = wall1 - wall0
        if stat0 is None or stat1 is None or wall <= 0:
            return {"other_cpu_frac": None, "steal_frac": None, "noisy": None}
        capacity = wall * self.cores
        other = max(0.0, (stat1[0] - stat0[0]) - (own1 - own0)) / capacity
        steal = max(0.0, stat1[1] - stat0[1]) / capacity
        return {
            "other_cpu_frac": min(other, 1.0),
            "steal_frac": min(steal, 1.0),
            "noisy": bool(other > NOISY_OTHER_FRACTION or steal > NOISY_STEAL_FRACTION),
        }
