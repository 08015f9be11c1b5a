"""Recommend a variant under user limits (accuracy drop, disk, p95 latency, peak RAM) and say what rules out the rest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profiling.schema import VariantStatus

RULE = (
    "Among the variants that meet every limit, the one with the lowest p95 latency (batch 1) is recommended; "
    "ties go to the smaller size on disk, then the lower peak RAM."
)
# Without an accuracy limit the recommendation must not trade accuracy away unseen: a variant then has to be within
# noise of the original's accuracy (McNemar's test on the stored predictions), or, for a run without per-example
# predictions, at most FALLBACK_DROP_PTS lower.
FALLBACK_DROP_PTS = 1.0
_LIMIT_KINDS = ("accuracy", "size on disk", "p95 latency", "peak RAM")
ASSUMED = "no accuracy limit set: within noise of the original's accuracy assumed"


@dataclass(frozen=True)
class Limits:
    """User limits; None means no limit. Accuracy drop is in percentage points against the original."""

    max_accuracy_drop_pts: float | None = field(default=None, metadata={"help": "Largest allowed accuracy loss (pts)"})
    max_disk_mib: float | None = field(default=None, metadata={"help": "Largest allowed size on disk (MiB)"})
    max_p95_ms: float | None = field(default=None, metadata={"help": "Largest allowed p95 latency, batch 1 (ms)"})
    max_ram_mib: float | None = field(default=None, metadata={"help": "Largest allowed peak RAM (MiB)"})

    def __post_init__(self) -> None:
        for name in ("max_accuracy_drop_pts", "max_disk_mib", "max_p95_ms", "max_ram_mib"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number or None, got {value!r}")
            if name != "max_accuracy_drop_pts" and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass
class Verdict:
    """One variant's figures and whether it meets the limits (``reasons`` lists each limit it breaks)."""

    idx: int
    name: str
    accuracy_drop_pts: float | None
    disk_mib: float | None
    p95_ms: float | None
    p95_source: str
    peak_ram_mib: float | None
    reasons: list[str]
    recommended: bool = False
    accuracy_change: Any = None  # profiling.measure.stats.AccuracyChange against the original, when predictions exist
    median_ms: float | None = None  # batch-1 median latency: the headline's speed-up when no p95 is known

    @property
    def meets(self) -> bool:
        return not self.reasons


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def p95_ms(metrics: dict) -> tuple[float | None, str]:
    """p95 of the batch-1 latency: from the raw timings when stored (numpy linear percentile), else a stored
    ``latency_b1_p95_ms``; (None, why) when neither is there."""
    raw = metrics.get("latency_b1_ms")
    if isinstance(raw, list):
        values = [v for v in (_num(x) for x in raw) if v is not None]
        if values:
            return float(np.percentile(np.asarray(values), 95)), f"p95 of {len(values)} raw timings"
    stored = _num(metrics.get("latency_b1_p95_ms"))
    if stored is not None:
        return stored, "stored p95"
    return None, "no raw latencies or p95 stored"


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _assumed_accuracy(verdict: Verdict) -> str | None:
    """Without an accuracy limit: why the variant is not within noise of the original's accuracy, or None."""
    ch = verdict.accuracy_change
    if ch is not None:
        if not ch.within_noise and ch.diff_pts < 0:
            return (f"accuracy {ch.diff_pts:+.1f} pts, a real drop by McNemar (p={ch.p_value:.2g}); "
                    f"{ASSUMED}").replace("-", "\u2212", 1)
        return None
    drop = verdict.accuracy_drop_pts
    if drop is not None and drop > FALLBACK_DROP_PTS + 1e-9:
        return (f"accuracy drop {_fmt(drop)} pts; no accuracy limit set and no per-example predictions to test "
                f"noise: at most {_fmt(FALLBACK_DROP_PTS)} pts assumed")
    return None


def evaluate(variants: list[dict], limits: Limits, changes: dict[int, Any] | None = None) -> list[Verdict]:
    """A verdict for every finished variant (store.variants records, idx 0 = the original); the best one that
    meets every limit is marked ``recommended`` (see RULE). ``changes`` (idx -> AccuracyChange, from
    profiling.report.uncertainty.accuracy_changes) lets the no-accuracy-limit case test "within noise" (ASSUMED)."""
    changes = changes or {}
    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    orig = next((v for v in done if int(v.get("idx", -1)) == 0), None)
    orig_acc = _num((orig or {}).get("metrics", {}).get("accuracy")) if orig else None
    out = []
    for v in done:
        m = v.get("metrics") if isinstance(v.get("metrics"), dict) else {}
        acc = _num(m.get("accuracy"))
        drop = (orig_acc - acc) * 100.0 if acc is not None and orig_acc is not None else None
        p95, source = p95_ms(m)
        verdict = Verdict(
            idx=int(v["idx"]),
            name=str(v.get("name") or f"variant {v['idx']}"),
            accuracy_drop_pts=drop,
            disk_mib=_num(m.get("disk_mib")),
            p95_ms=p95,
            p95_source=source,
            peak_ram_mib=_num(m.get("peak_rss_mib")),
            reasons=[],
            accuracy_change=changes.get(int(v["idx"])),
            median_ms=_num(m.get("latency_b1_median_ms")),
        )
        checks = (
            (limits.max_accuracy_drop_pts, drop, "accuracy drop", "pts"),
            (limits.max_disk_mib, verdict.disk_mib, "size on disk", "MiB"),
            (limits.max_p95_ms, p95, "p95 latency", "ms"),
            (limits.max_ram_mib, verdict.peak_ram_mib, "peak RAM", "MiB"),
        )
        for limit, value, what, unit in checks:
            if limit is None:
                continue
            if value is None:
                verdict.reasons.append(f"{what} unknown (not measured), limit {_fmt(limit)} {unit}")
            elif value > limit + 1e-9:
                verdict.reasons.append(f"{what} {_fmt(value)} {unit} > limit {_fmt(limit)} {unit}")
        if limits.max_accuracy_drop_pts is None and (why := _assumed_accuracy(verdict)):
            verdict.reasons.append(why)
        out.append(verdict)
    best = recommend(out)
    if best is not None:
        best.recommended = True
    return out


def recommend(verdicts: list[Verdict]) -> Verdict | None:
    """The best verdict that meets every limit under RULE, or None when none does."""
    ok = [v for v in verdicts if v.meets]
    if not ok:
        return None
    inf = math.inf

    def key(v: Verdict) -> tuple:
        return (
            v.p95_ms if v.p95_ms is not None else inf,
            v.disk_mib if v.disk_mib is not None else inf,
            v.peak_ram_mib if v.peak_ram_mib is not None else inf,
            v.idx,
        )

    return min(ok, key=key)


def summary(verdicts: list[Verdict], limits: Limits | None = None) -> str:
    """One sentence naming the recommendation, or saying that nothing meets the limits; says what it assumed
    about accuracy when no accuracy limit is set."""
    best = next((v for v in verdicts if v.recommended), None)
    assumed = f" ({ASSUMED[0].upper()}{ASSUMED[1:]}.)" if limits is None or limits.max_accuracy_drop_pts is None else ""
    if best is None:
        return ("No finished variant meets all the limits; loosen one (the table says which limit rules out each)."
                + assumed)
    n_ok = sum(v.meets for v in verdicts)
    p95 = f"{_fmt(best.p95_ms)} ms p95" if best.p95_ms is not None else "p95 unknown"
    return (f"Recommended: {best.name} ({p95}); {n_ok} of {len(verdicts)} finished variant(s) meet all the limits."
            + assumed)


def p95_footnote(verdicts: list[Verdict]) -> str:
    """Where each p95 comes from, every variant named once: "p95 from the raw batch-1 timings (original 30,
    onnx 45); stored p95 only: pruned"."""
    raw = [(v.name, v.p95_source.split()[2]) for v in verdicts if v.p95_source.startswith("p95 of ")]
    stored = [v.name for v in verdicts if v.p95_source == "stored p95"]
    missing = [v.name for v in verdicts if v.p95_ms is None]
    parts = []
    if raw:
        counts = {n for _, n in raw}
        if len(counts) == 1:
            parts.append(f"p95 of the {counts.pop()} raw batch-1 timings of each of {', '.join(n for n, _ in raw)}")
        else:
            parts.append("p95 of the raw batch-1 timings (" + ", ".join(f"{n}: {c}" for n, c in raw) + ")")
    if stored:
        parts.append("stored p95 only: " + ", ".join(stored))
    if missing:
        parts.append("no p95: " + ", ".join(missing))
    return "; ".join(parts)


def limit_kind(reason: str) -> str:
    """Which limit a reason names: "accuracy", "size on disk", "p95 latency" or "peak RAM"."""
    return next((k for k in _LIMIT_KINDS if reason.startswith(k)), "a limit")


def headline(verdicts: list[Verdict], limits: Limits) -> str:
    """The one sentence a stakeholder reads first: the recommendation under the limits with its speed-up, size
    ratio and accuracy change with its interval, or why nothing qualifies (markdown)."""
    orig = next((v for v in verdicts if v.idx == 0), None)
    best = next((v for v in verdicts if v.recommended), None)
    assumed = " No accuracy limit is set: within noise of the original's accuracy is assumed." \
        if limits.max_accuracy_drop_pts is None else ""
    if best is None:
        if not verdicts:
            return "No variant has finished yet."
        kinds = [limit_kind(r) for v in verdicts for r in v.reasons]
        common = max(sorted(set(kinds)), key=kinds.count) if kinds else "a limit"
        return (f"**No variant qualifies** under the current limits: each breaks at least one (most often: "
                f"{common}).{assumed}")
    if best.idx == 0 or orig is None:
        return f"**Keep the original**: no compressed variant is faster while meeting the limits.{assumed}"
    bits = []
    if best.p95_ms and orig.p95_ms:
        bits.append(f"**{orig.p95_ms / best.p95_ms:.1f}\u00d7 faster** than the original (p95, batch 1)")
    elif best.median_ms and orig.median_ms:
        bits.append(f"**{orig.median_ms / best.median_ms:.1f}\u00d7 faster** than the original (median, batch 1)")
    if best.disk_mib and orig.disk_mib:
        bits.append(f"**{best.disk_mib / orig.disk_mib:.2f}\u00d7 the size** on disk")
    ch = best.accuracy_change
    if ch is not None:
        acc = (f"accuracy {ch.diff_pts:+.1f} points (95 % CI {ch.ci_low_pts:+.1f} to {ch.ci_high_pts:+.1f}: "
               f"{ch.verdict})").replace("-", "\u2212")
        bits.append(acc)
    elif best.accuracy_drop_pts is not None:
        bits.append(f"accuracy {-best.accuracy_drop_pts:+.1f} points".replace("-", "\u2212"))
    return f"**Recommended: {best.name}**: " + ", ".join(bits) + f".{assumed}"
