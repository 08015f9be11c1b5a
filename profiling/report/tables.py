"""The reference-style results table of a run (shared by the CLI, the benchmark and the dashboard)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from profiling.schema import METRICS, VariantStatus, metric
from profiling.store.runs import RunStore

# Column label -> metrics key, from the registry (units in the labels; the figures come straight from the stored
# metrics).
METRIC_COLUMNS: dict[str, str] = {m.label: m.key for m in METRICS}
# Ratio column -> (numerator column); each is the variant's figure divided by the original's (< 1 is smaller/faster).
RATIO_COLUMNS: dict[str, str] = {
    "Size ratio": "Disk (MiB)",
    "RAM ratio": "Peak RAM (MiB)",
    "Latency ratio": "Latency b1 median (ms)",
    "Latency bN ratio": "Latency bN median (ms)",
}
VERDICT = "b1 vs original"  # faster / within noise / slower: overlapping 95 % intervals are not ranked
COLUMNS = ["idx", "Variant", "Status", *METRIC_COLUMNS, *RATIO_COLUMNS, VERDICT, "Lineage", "Error", "Notes"]

# The compact table the CLI prints: column -> (short header, format); a figure's format is the registry's.
_CLI_FIGURES: dict[str, str] = {
    "peak_rss_mib": "peak MiB",
    "disk_mib": "disk MiB",
    "load_time_s": "load s",
    "latency_b1_median_ms": "b1 med ms",
    "latency_b1_p90_ms": "b1 p90",
    "latency_bN_median_ms": "bN med ms",
    "latency_bN_p90_ms": "bN p90",
    "throughput_per_s": "/s",
    "accuracy": "acc",
    "macro_f1": "F1",
    "agreement": "agree",
}
CLI_COLUMNS: dict[str, tuple[str, str]] = {
    "Variant": ("variant", "{}"),
    **{metric(key).label: (short, metric(key).fmt) for key, short in _CLI_FIGURES.items()},
    "Size ratio": ("size x", "{:.2f}"),
    "Latency ratio": ("lat x", "{:.2f}"),
    VERDICT: ("b1 vs orig", "{}"),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def results_frame(store: RunStore, run_id: str) -> pd.DataFrame:
    """One row per variant: the figures, the ratios against the original (variant 0), status and error."""
    rows = []
    for v in store.variants(run_id):
        m = v["metrics"] if isinstance(v["metrics"], dict) else {}
        row: dict[str, Any] = {"idx": v["idx"], "Variant": v["name"], "Status": v["status"]}
        for label, key in METRIC_COLUMNS.items():
            row[label] = _number(m.get(key))
        row["Lineage"] = " > ".join(map(str, v["lineage"])) or "original"
        row["Error"] = v["error"] or ""
        row["Notes"] = "; ".join(map(str, v["notes"]))
        rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in RATIO_COLUMNS])
    base = df[df["idx"] == 0]
    for ratio, col in RATIO_COLUMNS.items():
        ref = base[col].iloc[0] if len(base) else None
        if ref is None or pd.isna(ref) or ref == 0:
            df[ratio] = None
        else:
            df[ratio] = df[col] / ref
    df[VERDICT] = _verdicts(store.variants(run_id))
    df = df[COLUMNS]
    df.attrs["accuracy_changes"] = _accuracy_lines(store, run_id)
    run = store.get_run(run_id)
    settings = (run or {}).get("request", {}).get("settings", {})
    df.attrs["batch_size"] = settings.get("batch_size")
    df.attrs["run_id"] = run_id
    return df


def _verdicts(variants: list[dict]) -> list[str | None]:
    from profiling.measure.stats import compare_intervals, latency_interval

    cis = [latency_interval(v["metrics"] if isinstance(v["metrics"], dict) else {}, "b1") for v in variants]
    ref = next((ci for v, ci in zip(variants, cis, strict=True) if v["idx"] == 0), None)
    return [None if v["idx"] == 0 or ci is None or ref is None else compare_intervals(ci[1:], ref[1:])
            for v, ci in zip(variants, cis, strict=True)]


def _accuracy_lines(store: RunStore, run_id: str) -> list[str]:
    """"name: -0.4 points (95 % CI ...), McNemar p=...: within noise" per variant, from the stored predictions."""
    from profiling.measure.stats import accuracy_change

    labels = store.examples(run_id).get("labels") or []
    orig = (store.predictions(run_id, 0) or {}).get("preds") or []
    if not labels or len(orig) != len(labels):
        return []
    lines = []
    for v in store.variants(run_id):
        preds = (store.predictions(run_id, v["idx"]) or {}).get("preds") or [] if v["idx"] else []
        if len(preds) == len(labels):
            lines.append(f"{v['name']}: accuracy {accuracy_change(labels, orig, preds).text()}")
    return lines


def format_table(df: pd.DataFrame) -> str:
    """The reference-style plain-text table (failed variants show their reason)."""
    n = df.attrs.get("batch_size") or "N"
    headers = [CLI_COLUMNS[c][0].replace("bN", f"b{n}") for c in CLI_COLUMNS]
    body = []
    for _, row in df.iterrows():
        cells = []
        for col, (_, fmt) in CLI_COLUMNS.items():
            value = row[col]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("-")
            else:
                cells.append(fmt.format(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for cells in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    for _, row in df.iterrows():
        if row["Status"] == VariantStatus.FAILED and row["Error"]:
            lines.append(f"! {row['Variant']}: failed: {row['Error']}")
    changes = df.attrs.get("accuracy_changes") or []
    if changes:
        from profiling.measure.stats import ACCURACY_TEST

        lines.extend([*changes, ACCURACY_TEST])  # which test decides: said once, under the lines it decides
    return "\n".join(lines)
