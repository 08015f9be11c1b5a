"""Honest uncertainty: bootstrap intervals of a median and of a paired accuracy difference, McNemar's exact test,
and latency repeats chosen adaptively until the median's interval is narrow enough or a time budget is spent."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CHECK_RESAMPLES = 500  # the stopping checks: cheaper, as they run (untimed) between the timed calls
CHUNK_ELEMENTS = 250_000  # resampled values held at once (int32 indices + float64 values: ~3 MB)


def _bootstrap_interval(
    x: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile-bootstrap (low, high) of ``stat`` (applied row-wise to resampled copies of ``x``).

    Small chunks: this runs inside the profiled process between timed calls, so its temporaries (~3 MB at most)
    must not show in the variant's memory figures.
    """
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    chunk = max(1, CHUNK_ELEMENTS // x.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size), dtype=np.int32)
        stats[start:stop] = stat(x[idx])
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_median_ci(
    values: Sequence[float], level: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> tuple[float, float, float]:
    """(median, low, high): the sample median and its percentile-bootstrap interval at ``level``.

    Seeded, so the same values always give the same interval. One value gives a zero-width interval.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    median = float(np.median(x))
    if x.size == 1 or np.all(x == x[0]):
        return median, median, median
    low, high = _bootstrap_interval(x, lambda r: np.median(r, axis=1), level, resamples, seed)
    return median, low, high


def relative_half_width(median: float, low: float, high: float) -> float:
    """Half the interval's width as a fraction of the median (inf for a zero or negative median)."""
    return (high - low) / 2 / median if median > 0 else math.inf


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the closed intervals (low, high) a and b share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def compare_intervals(value: tuple[float, float], reference: tuple[float, float]) -> str:
    """"faster", "slower" or "within noise" for a latency interval against a reference interval (lower is faster)."""
    if any(v is None or not math.isfinite(v) for v in (*value, *reference)):
        return "unknown"
    if intervals_overlap(value, reference):
        return "within noise"
    return "faster" if value[1] < reference[0] else "slower"


def finite_or_nan(value: Any) -> float:
    """``value`` as a float, or NaN when it is missing, not a number or not finite (how stored figures are read)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def latency_interval(metrics: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    """(median, low, high) of a stored latency figure (``key`` "b1" or "bN"): the stored interval, or one
    bootstrapped from the stored raw values (runs made before intervals were stored); None without either."""

    median = finite_or_nan(metrics.get(f"latency_{key}_median_ms"))
    low, high = finite_or_nan(metrics.get(f"latency_{key}_ci_low_ms")), finite_or_nan(metrics.get(f"latency_{key}_ci_high_ms"))
    if not (math.isnan(low) or math.isnan(high)):
        return (median if not math.isnan(median) else (low + high) / 2), low, high
    raw = metrics.get(f"latency_{key}_ms")
    values = [v for v in (finite_or_nan(x) for x in raw) if not math.isnan(v)] if isinstance(raw, list) else []
    return bootstrap_median_ci(values) if values else None


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts: ``b`` examples only the first model got
    right, ``c`` only the second. 1.0 when there are no discordant pairs.

    Under the null each discordant pair goes either way with probability 1/2, so ``b`` ~ Binomial(b + c, 1/2) and
    the two-sided p-value is twice the smaller tail, capped at 1 (for p = 1/2 the same as scipy's
    ``binomtest(b, n, 0.5).pvalue``, which sums every outcome no more likely than ``b``; the distribution is
    symmetric). Exact integer arithmetic, so no scipy import and no underflow for large counts."""
    from fractions import Fraction  # here: the profiling child imports this module and stays lean

    for name, v in (("b", b), ("c", c)):
        if int(v) != v or v < 0:
            raise ValueError(f"discordant count {name} must be a whole number >= 0, got {v!r}")
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    if 2 * k == n:
        return 1.0
    term = tail = 1  # C(n, 0); each next term C(n, i + 1) = C(n, i) * (n - i) / (i + 1), exact in integers
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term  # 2**n * P(X <= k)
    return min(1.0, float(Fraction(2 * tail, 2**n)))


def paired_bootstrap_diff(
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """(difference, low, high) of accuracy b minus accuracy a, resampling examples (pairs) with replacement."""
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot pair {a.size} results with {b.size}")
    if a.size == 0:
        raise ValueError("no examples to compare")
    d = b - a
    diff = float(d.mean())
    if np.all(d == d[0]):
        return diff, diff, diff
    low, high = _bootstrap_interval(d, lambda r: r.mean(axis=1), level, resamples, seed)
    return diff, low, high


@dataclass
class AccuracyChange:
    """A variant's accuracy against the original's on the same examples."""

    n: int
    agreement: float
    accuracy_original: float
    accuracy_variant: float
    diff_pts: float
    ci_low_pts: float
    ci_high_pts: float
    only_original_right: int  # McNemar's b
    only_variant_right: int  # McNemar's c
    p_value: float
    within_noise: bool

    def text(self) -> str:
        """E.g. "−0.4 points (95 % CI −1.2 to +0.4), McNemar p=0.38: within noise"."""

        def pts(v: float) -> str:
            return f"{v:+.1f}".replace("-", "\u2212")

        return (
            f"{pts(self.diff_pts)} points (95 % CI {pts(self.ci_low_pts)} to {pts(self.ci_high_pts)}), "
            f"McNemar p={self.p_value:.2g}: {self.verdict}"
        )

    @property
    def verdict(self) -> str:
        """What the change is, never contradicting its own figures (ACCURACY_TEST says which test decides):
        McNemar rejects -> "a real drop/gain"; it does not but the paired interval excludes 0 -> "a small
        drop/gain, not significant by McNemar"; otherwise "within noise"."""
        word = "drop" if self.diff_pts < 0 else "gain"
        if not self.within_noise:
            return f"a real {word}"
        if self.ci_high_pts < 0 or self.ci_low_pts > 0:
            return f"a small {word}, not significant by McNemar"
        return "within noise"


ACCURACY_TEST = (
    "McNemar's exact test (p < 0.05, on the examples only one of the two got right) decides whether an accuracy "
    "change is real; the 95 % paired bootstrap interval shows how large it may be."
)


def accuracy_change(
    labels: Sequence[int], original: Sequence[int], variant: Sequence[int], alpha: float = 0.05, seed: int = 0
) -> AccuracyChange:
    """Agreement, the paired bootstrap interval of the accuracy difference and McNemar's exact test.

    "Within noise" when McNemar's p >= ``alpha`` (the bootstrap interval then normally contains 0 as well).
    """
    if not len(labels) == len(original) == len(variant):
        raise ValueError(f"{len(labels)} labels, {len(original)} original and {len(variant)} variant predictions")
    y, po, pv = (np.asarray(v) for v in (labels, original, variant))
    ok_o, ok_v = po == y, pv == y
    diff, low, high = paired_bootstrap_diff(ok_o, ok_v, seed=seed)
    b, c = int(np.sum(ok_o & ~ok_v)), int(np.sum(~ok_o & ok_v))
    p = mcnemar_exact(b, c)
    return AccuracyChange(
        n=int(y.size),
        agreement=float(np.mean(po == pv)),
        accuracy_original=float(ok_o.mean()),
        accuracy_variant=float(ok_v.mean()),
        diff_pts=100 * diff,
        ci_low_pts=100 * low,
        ci_high_pts=100 * high,
        only_original_right=b,
        only_variant_right=c,
        p_value=p,
        within_noise=p >= alpha,
    )


# ---- adaptive repeats -----------------------------------------------------------------------------------------


@dataclass
class AdaptiveResult:
    """Raw timings and why the loop stopped: "target" (interval narrow enough), "budget", "max-repeats" or "fixed"
    (no target set: exactly the minimum number of repeats)."""

    raw: list[float]
    median: float
    ci_low: float
    ci_high: float
    target_rel: float
    target_reached: bool
    stopped_by: str
    elapsed_s: float
    checks: list[tuple[int, float]] = field(default_factory=list)  # (repeats so far, relative half-width)

    @property
    def rel_half_width(self) -> float:
        return relative_half_width(self.median, self.ci_low, self.ci_high)

    def metrics(self, prefix: str) -> dict[str, Any]:
        """Flat metrics ``{prefix}ci_low_ms`` etc., for the run store."""
        return {
            f"{prefix}ci_low_ms": self.ci_low,
            f"{prefix}ci_high_ms": self.ci_high,
            f"{prefix}n": len(self.raw),
            f"{prefix}target_rel": self.target_rel,
            f"{prefix}target_reached": self.target_reached,
            f"{prefix}stopped_by": self.stopped_by,
            f"{prefix}rel_half_width": self.rel_half_width,
            f"{prefix}elapsed_s": self.elapsed_s,
        }


def adaptive_repeat_ms(
    fn: Callable[[int], Any],
    min_repeats: int,
    max_repeats: int,
    target_rel: float = 0.0,
    budget_s: float = 0.0,
    on_each: Callable[[int, float], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AdaptiveResult:
    """Call ``fn(i)`` and time it (milliseconds) until the median's bootstrap 95 % interval has a relative half-width
    <= ``target_rel`` (e.g. 0.02 for ±2 %), or ``budget_s`` seconds of timing are spent, or ``max_repeats`` is hit.

    ``min_repeats`` calls always run (even past the budget). ``target_rel`` 0 means no target: exactly
    ``min_repeats`` calls. The interval is checked (500 resamples) after the minimum and then every ~20 % more
    repeats; its cost is outside the timed calls but inside the budget. The reported interval uses 2000 resamples. ``on_each(i, ms)`` runs after each call, outside the timed region. ``clock`` (seconds)
    is injectable for tests.
    """
    if min_repeats < 1:
        raise ValueError(f"min_repeats must be >= 1, got {min_repeats}")
    if max_repeats < min_repeats:
        raise ValueError(f"max_repeats ({max_repeats}) must be >= min_repeats ({min_repeats})")
    if target_rel < 0 or budget_s < 0:
        raise ValueError(f"target_rel and budget_s must be >= 0, got {target_rel} and {budget_s}")
    adaptive = target_rel > 0
    limit = max_repeats if adaptive else min_repeats
    raw: list[float] = []
    checks: list[tuple[int, float]] = []
    start = clock()
    next_check = min_repeats
    stopped_by = "fixed" if not adaptive else "max-repeats"
    reached = False
    i = 0
    while i < limit:
        t = clock()
        fn(i)
        ms = (clock() - t) * 1000.0
        raw.append(ms)
        if on_each is not None:
            on_each(i, ms)
        i += 1
        if not adaptive or i < min_repeats:
            continue
        if i >= next_check:
            rel = relative_half_width(*bootstrap_median_ci(raw, resamples=CHECK_RESAMPLES))
            checks.append((i, rel))
            next_check = i + max(1, i // 5)
            if rel <= target_rel:
                stopped_by, reached = "target", True
                break
        if budget_s and clock() - start >= budget_s:
            stopped_by = "budget"
            break
    elapsed = clock() - start
    median, low, high = bootstrap_median_ci(raw)  # the reported interval: more resamples than the checks
    if adaptive and not reached:
        reached = relative_half_width(median, low, high) <= target_rel
    return AdaptiveResult(raw, median, low, high, target_rel, reached, stopped_by, elapsed, checks)
