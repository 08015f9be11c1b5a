"""Latency timing helpers: perf_counter timing of calls and summaries of the raw values."""

from __future__ import annotations

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
