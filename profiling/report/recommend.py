"""Recommend a variant under user limits (accuracy drop, disk, p95 latency, peak RAM) and say what rules out the rest."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RULE = (
    "Among the variants that meet every limit, the one with the lowest p95 latency (batch 1) is recommended; "
    "ties go to the smaller size on disk, then the lower peak RAM."
)


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


def evaluate(variants: list[dict], limits: Limits) -> list[Verdict]:
    """A verdict for every finished variant (store.variants records, idx 0 = the original); the best one that
    meets every limit is marked ``recommended`` (see RULE)."""
    done = [v for v in variants if v.get("status") == "done"]
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


def summary(verdicts: list[Verdict]) -> str:
    """One sentence naming the recommendation, or saying that nothing meets the limits."""
    best = next((v for v in verdicts if v.recommended), None)
    if best is None:
        return "No finished variant meets all the limits; loosen one (the table says which limit rules out each)."
    n_ok = sum(v.meets for v in verdicts)
    p95 = f"{_fmt(best.p95_ms)} ms p95" if best.p95_ms is not None else "p95 unknown"
    return f"Recommended: {best.name} ({p95}); {n_ok} of {len(verdicts)} finished variant(s) meet all the limits."
