"""How sure the Results figures are: latency intervals and "within noise" verdicts, accuracy changes with a paired
bootstrap interval and McNemar's test, noisy measurements, and what the memory figures mean (RSS vs USS)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from profiling.measure.stats import AccuracyChange, accuracy_change, compare_intervals, finite_or_nan, latency_interval

LATENCY_KEYS = ("b1", "bN")
# Extra columns of the reference table, each shown right after its anchor figure (results_data.display_columns).
NOISE_COLUMNS: dict[str, dict[str, str]] = {
    "latency_b1_median_ms": {"latency_b1_ci": "Latency b1 95 % CI (ms)", "latency_b1_vs_original": "b1 vs original"},
    "latency_bN_median_ms": {"latency_bN_ci": "Latency bN 95 % CI (ms)", "latency_bN_vs_original": "bN vs original"},
    "agreement": {"accuracy_vs_original": "Accuracy vs original"},
}
RSS_MEANING = (
    "**Peak RAM is the peak resident set size (RSS)** of the variant's own profiling process: every page of it "
    "that is in RAM, including pages it shares with other processes, such as memory-mapped model files and shared "
    "libraries (they count in full here although the OS keeps one copy). **USS** (unique set size) counts only the "
    "pages no other process shares: what exiting the process would free; it is read once, at the end of the "
    "evaluation. The peak is the larger of the 20 Hz samples and the kernel's own high-water mark (VmHWM), which the "
    "process reads at each phase, so a spike between two samples is not lost; the OS max RSS column is the kernel's "
    "figure for the same process, as its parent sees it when the process ends."
)


def latency_ci(metrics: Mapping[str, Any], key: str) -> tuple[float, float, float] | None:
    """(median, low, high) of a latency figure: as stored, or bootstrapped from the stored raw values (runs made
    before intervals were stored); None without either."""
    return latency_interval(dict(metrics), key)


def _ci_text(ci: tuple[float, float, float] | None) -> str | None:
    return None if ci is None else f"{ci[1]:.1f} \u2013 {ci[2]:.1f}"


def accuracy_changes(
    variants: list[dict], predictions: Mapping[int, Any] | None, labels: Sequence[int] | None
) -> dict[int, AccuracyChange]:
    """idx -> AccuracyChange against the original (idx 0) on the same examples, from the stored predictions."""
    predictions = predictions or {}
    orig = (predictions.get(0) or {}).get("preds")
    if not orig or labels is None or len(orig) != len(labels):
        return {}
    out = {}
    for v in variants:
        idx = int(v["idx"])
        preds = (predictions.get(idx) or {}).get("preds")
        if idx == 0 or not preds or len(preds) != len(labels):
            continue
        out[idx] = accuracy_change(labels, orig, preds)
    return out


def _short(ch: AccuracyChange) -> str:
    return f"{ch.diff_pts:+.1f} pts, p={ch.p_value:.2g}".replace("-", "\u2212") + f": {ch.verdict}"


def add_noise_columns(
    df: pd.DataFrame,
    variants: list[dict],
    predictions: Mapping[int, Any] | None = None,
    labels: Sequence[int] | None = None,
) -> None:
    """Add the ``NOISE_COLUMNS`` to the reference frame (index = variant idx), in place: each latency median's 95 %
    interval, "faster / within noise / slower" against the original (overlapping intervals are not ranked), and the
    accuracy change with McNemar's p."""
    by_idx = {int(v["idx"]): v.get("metrics") or {} for v in variants}
    for key in LATENCY_KEYS:
        cis = {idx: latency_ci(m, key) for idx, m in by_idx.items()}
        ref = cis.get(0)
        df[f"latency_{key}_ci"] = [_ci_text(cis.get(int(i))) for i in df.index]
        verdicts = []
        for i in df.index:
            ci = cis.get(int(i))
            if int(i) == 0 or ci is None or ref is None:
                verdicts.append(None)
            else:
                verdicts.append(compare_intervals((ci[1], ci[2]), (ref[1], ref[2])))
        df[f"latency_{key}_vs_original"] = verdicts
    changes = accuracy_changes(variants, predictions, labels)
    df["accuracy_vs_original"] = [_short(changes[int(i)]) if int(i) in changes else None for i in df.index]


def noisy_measurements(variants: list[dict]) -> list[str]:
    """One line per latency figure measured while other processes took a large share of the CPU."""
    lines = []
    for v in variants:
        m = v.get("metrics") or {}
        for key in LATENCY_KEYS:
            if m.get(f"latency_{key}_noisy"):
                other, steal = finite_or_nan(m.get(f"latency_{key}_other_cpu_frac")), finite_or_nan(m.get(f"latency_{key}_steal_frac"))
                extra = f", {steal:.0%} stolen by the hypervisor" if steal and steal > 0.005 else ""
                lines.append(f"**{v.get('name')}** ({key}): other processes used {other:.0%} of the CPU{extra}")
    return lines


def trust_frame(variants: list[dict], batch_size: int | None = None) -> pd.DataFrame:
    """Per variant and latency figure: median, interval, relative half-width, repeats, whether the interval target
    was reached, the CPU share other processes took, and the verdict against the original."""
    rows = []
    by_idx = {int(v["idx"]): v for v in variants}
    for key in LATENCY_KEYS:
        ref = latency_ci((by_idx.get(0) or {}).get("metrics") or {}, key)
        for idx, v in by_idx.items():
            m = v.get("metrics") or {}
            ci = latency_ci(m, key)
            if ci is None:
                continue
            raw = m.get(f"latency_{key}_ms")
            n = m.get(f"latency_{key}_n") or (len(raw) if isinstance(raw, list) else None)
            target = finite_or_nan(m.get(f"latency_{key}_target_rel"))
            reached = m.get(f"latency_{key}_target_reached")
            rows.append(
                {
                    "Variant": str(v.get("name")),
                    "Figure": key.replace("bN", f"b{batch_size}") if batch_size else key,
                    "Median (ms)": ci[0],
                    "95 % CI (ms)": _ci_text(ci),
                    "\u00b1 %": 100 * (ci[2] - ci[1]) / 2 / ci[0] if ci[0] else math.nan,
                    "Repeats": n,
                    "Target": (f"\u00b1{100 * target:g} %: " + ("reached" if reached else "not reached"))
                    if target and not math.isnan(target) else "fixed repeats",
                    "Other CPU use": finite_or_nan(m.get(f"latency_{key}_other_cpu_frac")),
                    "vs original": "reference" if idx == 0 else (None if ref is None
                                                                 else compare_intervals(ci[1:], ref[1:])),
                }
            )
    return pd.DataFrame(rows)


def memory_frame(variants: list[dict]) -> pd.DataFrame:
    """Per variant: reported peak RSS, where it came from and in which phase, the sampled peak, the OS's max RSS,
    USS and the file-backed part of RSS (e.g. the mapped model)."""
    rows = []
    for v in variants:
        m = v.get("metrics") or {}
        if math.isnan(finite_or_nan(m.get("peak_rss_mib"))):
            continue
        rows.append(
            {
                "Variant": str(v.get("name")),
                "Peak RSS (MiB)": finite_or_nan(m.get("peak_rss_mib")),
                "Peak phase": m.get("peak_rss_phase"),
                "Peak from": m.get("peak_rss_source") or "sampled",
                "Sampled peak (MiB)": finite_or_nan(m.get("peak_rss_sampled_mib", m.get("peak_rss_mib"))),
                "OS max RSS (MiB)": finite_or_nan(m.get("rusage_maxrss_mib")),
                "USS at end (MiB)": finite_or_nan(m.get("uss_mib")),
                "File-backed RSS (MiB)": finite_or_nan(m.get("rss_file_mib")),
            }
        )
    return pd.DataFrame(rows)


def missed_peaks(variants: list[dict]) -> list[str]:
    """"name: 812 MiB during load, 35 MiB above the highest sample" for peaks only the high-water mark saw."""
    out = []
    for v in variants:
        m = v.get("metrics") or {}
        if m.get("peak_rss_source") == "kernel high-water mark":
            out.append(f"{v.get('name')}: {finite_or_nan(m.get('peak_rss_mib')):.0f} MiB during {m.get('peak_rss_phase')}, "
                       f"{finite_or_nan(m.get('peak_rss_missed_mib')):.0f} MiB above the highest sample")
    return out
