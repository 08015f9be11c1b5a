"""Pure functions turning run-store records into DataFrames for the Results page (no streamlit)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from profiling.measure.stats import finite_or_nan
from profiling.schema import METRICS, RunStatus, VariantStatus

# Figures of the reference table in display order: metrics key -> header, from the registry (the labels
# profiling.report.tables shows; "bN" becomes the real batch size, e.g. "b8").
FIGURES: dict[str, str] = {m.key: m.label for m in METRICS}
# Ratios against the original: variant value / original value (< 1 is smaller or faster); accuracy: difference.
RATIOS: dict[str, tuple[str, str]] = {
    "disk_ratio": ("disk_mib", "Size ratio"),
    "peak_rss_ratio": ("peak_rss_mib", "RAM ratio"),
    "latency_b1_ratio": ("latency_b1_median_ms", "Latency ratio"),
    "latency_bN_ratio": ("latency_bN_median_ms", "Latency bN ratio"),
    "throughput_ratio": ("throughput_per_s", "Throughput ratio"),
}
ACCURACY_DELTA = ("accuracy_delta_pts", "\u0394 accuracy (pts)")
STATUS_LABELS: dict[str, str] = {
    VariantStatus.PENDING: "waiting",
    VariantStatus.BUILDING: "building",
    VariantStatus.PROFILING: "profiling",
    VariantStatus.DONE: "done",
    VariantStatus.FAILED: "failed",
}


def confusion(labels: Sequence[int], preds: Sequence[int], n: int) -> np.ndarray:
    """Counts of (true row, predicted column) over n classes; out-of-range values are ignored."""
    cm = np.zeros((n, n), dtype=int)
    for t, p in zip(labels, preds, strict=False):
        if 0 <= int(t) < n and 0 <= int(p) < n:
            cm[int(t), int(p)] += 1
    return cm


def _macro_f1(labels: Sequence[int], preds: Sequence[int], n: int) -> float:
    """Macro-F1 as the profiler stores it (profiling.measure.evaluation); NaN when the classes are out of range."""
    from profiling.measure.evaluation import classification_metrics

    try:
        return classification_metrics(labels, preds, n)["macro_f1"]
    except ValueError:
        return math.nan


def metrics_frame(
    variants: list[dict],
    predictions: dict[int, dict | None] | None = None,
    labels: Sequence[int] | None = None,
    n_labels: int | None = None,
) -> pd.DataFrame:
    """One row per variant (index = variant idx): name, techniques, status, every figure, ratios to the original.

    Accuracy, macro-F1 and agreement come from the stored metrics, or are computed from ``predictions``
    ({idx: {"preds", "probs"}}) and the true ``labels`` when the metrics lack them. Missing figures are NaN.
    """
    predictions = predictions or {}
    rows = []
    orig_preds = (predictions.get(0) or {}).get("preds")
    for v in variants:
        m = v.get("metrics") or {}
        row: dict[str, Any] = {
            "idx": int(v["idx"]),
            "variant": str(v.get("name") or f"variant {v['idx']}"),
            "techniques": " \u2192 ".join(str(s) for s in v.get("lineage") or []) or "original",
            "status": STATUS_LABELS.get(v.get("status"), str(v.get("status"))),
            "batch_size": finite_or_nan(m.get("batch_size")),
        }
        for key in FIGURES:
            row[key] = finite_or_nan(m.get(key))
        preds = (predictions.get(int(v["idx"])) or {}).get("preds")
        if preds and labels is not None and len(preds) == len(labels):
            n = n_labels or (max(max(labels), max(preds)) + 1)
            if math.isnan(row["accuracy"]):
                row["accuracy"] = float(np.mean(np.asarray(preds) == np.asarray(labels)))
            if math.isnan(row["macro_f1"]):
                row["macro_f1"] = _macro_f1(labels, preds, n)
        if math.isnan(row["agreement"]):
            if int(v["idx"]) == 0 and v.get("status") == VariantStatus.DONE:
                row["agreement"] = 1.0
            elif preds and orig_preds and len(preds) == len(orig_preds):
                row["agreement"] = float(np.mean(np.asarray(preds) == np.asarray(orig_preds)))
        rows.append(row)
    columns = ["idx", "variant", "techniques", "status", "batch_size", *FIGURES, *RATIOS, ACCURACY_DELTA[0]]
    df = pd.DataFrame(rows, columns=columns[: 5 + len(FIGURES)])
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df.set_index("idx", drop=False)
    df.index.name = None
    base = df.loc[0] if 0 in df.index else None
    for key, (source, _) in RATIOS.items():
        ref = finite_or_nan(base[source]) if base is not None else math.nan
        df[key] = df[source] / ref if ref and not math.isnan(ref) else math.nan
    ref_acc = finite_or_nan(base["accuracy"]) if base is not None else math.nan
    df[ACCURACY_DELTA[0]] = (df["accuracy"] - ref_acc) * 100.0
    from profiling.report.uncertainty import add_noise_columns  # intervals and "within noise" verdicts

    add_noise_columns(df, variants, predictions, labels)
    return df


def batch_size_of(df: pd.DataFrame) -> int | None:
    sizes = df["batch_size"].dropna() if "batch_size" in df else pd.Series(dtype=float)
    return int(sizes.iloc[0]) if len(sizes) else None


def display_columns(df: pd.DataFrame) -> dict[str, str]:
    """Column key -> human header (with the real batch size) for the reference table."""
    n = batch_size_of(df)
    heads = {"variant": "Variant", "techniques": "Techniques", "status": "Status"}
    from profiling.report.uncertainty import NOISE_COLUMNS

    for key, label in FIGURES.items():
        heads[key] = label.replace("bN", f"b{n}") if n else label
        for extra, extra_label in NOISE_COLUMNS.get(key, {}).items():
            heads[extra] = extra_label.replace("bN", f"b{n}") if n else extra_label
    for key, (_, label) in RATIOS.items():
        heads[key] = label.replace("bN", f"b{n}") if n else label
    heads[ACCURACY_DELTA[0]] = ACCURACY_DELTA[1]
    return heads


def table_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The reference table with human headers, ready to show or download as CSV."""
    heads = display_columns(df)
    return df[[c for c in heads if c in df.columns]].rename(columns=heads).reset_index(drop=True)


def changed_examples(examples: dict, original: dict, variant: dict) -> pd.DataFrame:
    """The examples whose predicted class differs between the original and the variant.

    Columns: example (index in the evaluation sample), text, true, original, original_prob, variant,
    variant_prob (the probability each model gave its own prediction), effect (fixed / broken / changed),
    plus the class indices true_idx, original_idx, variant_idx for filtering.
    """
    texts = list(examples.get("texts") or [])
    labels = list(examples.get("labels") or [])
    names = [str(x) for x in examples.get("label_names") or []]
    po, pv = list(original.get("preds") or []), list(variant.get("preds") or [])
    qo, qv = list(original.get("probs") or []), list(variant.get("probs") or [])
    n = min(len(texts), len(labels), len(po), len(pv))

    def name(k: int) -> str:
        return names[k] if 0 <= k < len(names) else str(k)

    def prob(probs: list, i: int, k: int) -> float:
        try:
            return float(probs[i][k])
        except (IndexError, TypeError, ValueError):
            return math.nan

    rows = []
    for i in range(n):
        a, b, t = int(po[i]), int(pv[i]), int(labels[i])
        if a == b:
            continue
        effect = "fixed" if b == t else ("broken" if a == t else "changed")
        rows.append(
            {
                "example": i,
                "text": str(texts[i]),
                "true": name(t),
                "original": name(a),
                "original_prob": prob(qo, i, a),
                "variant": name(b),
                "variant_prob": prob(qv, i, b),
                "effect": effect,
                "true_idx": t,
                "original_idx": a,
                "variant_idx": b,
            }
        )
    cols = [
        "example",
        "text",
        "true",
        "original",
        "original_prob",
        "variant",
        "variant_prob",
        "effect",
        "true_idx",
        "original_idx",
        "variant_idx",
    ]
    return pd.DataFrame(rows, columns=cols)


def filter_pair(changed: pd.DataFrame, true_idx: int | None = None, pred_idx: int | None = None) -> pd.DataFrame:
    """Changed examples that moved into or out of the confusion cell (true ``true_idx``, predicted ``pred_idx``):
    true label matches and either the original or the variant predicted ``pred_idx``. None = any."""
    mask = pd.Series(True, index=changed.index)
    if true_idx is not None:
        mask &= changed["true_idx"] == true_idx
    if pred_idx is not None:
        mask &= (changed["original_idx"] == pred_idx) | (changed["variant_idx"] == pred_idx)
    return changed[mask]


def variant_notes(variants: list[dict], run: dict | None = None) -> list[tuple[str, str, str]]:
    """(variant names, kind, message) for every note worth showing: kind is "failed", "warning" or "info".

    Failed variants give their reason; stored notes (deprecated APIs and the like) are passed through; a model
    with random weights gets a line saying accuracy is not meaningful. A note several variants share is shown once,
    naming them ("all variants" when every one has it).
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    model = str(((run or {}).get("request") or {}).get("model", ""))
    random_said = False
    names = [str(v.get("name") or f"variant {v.get('idx')}") for v in variants]
    for name, v in zip(names, variants, strict=True):
        if v.get("status") == VariantStatus.FAILED:
            grouped.setdefault(("failed", f"failed: {v.get('error') or 'no reason recorded'}"), []).append(name)
        for note in v.get("notes") or []:
            text = str(note)
            low = text.lower()
            random_said |= "random" in low and "weight" in low
            kind = "warning" if any(w in low for w in ("deprecat", "random", "not meaningful", "slow")) else "info"
            members = grouped.setdefault((kind, text), [])
            if name not in members:
                members.append(name)
    out = [
        ("all variants" if len(who) == len(names) > 1 else ", ".join(who), kind, text)
        for (kind, text), who in grouped.items()
    ]
    if model.startswith("preset:") and not random_said:
        text = (
            f"{model} has random weights: accuracy, macro-F1 and the confusion matrices are not meaningful; "
            "compare size, memory and speed only"
        )
        out.insert(0, ("all variants", "warning", text))
    return out


def flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dict -> [(dotted key, value as text)] for showing the environment fingerprint as a table."""
    items: list[tuple[str, str]] = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(flatten(value, name + "."))
        else:
            items.append((name, "" if value is None else str(value)))
    return items


def run_label(run: dict) -> str:
    """One line naming a run in the selector: date, model, dataset, techniques count, status."""
    created = str(run.get("created_at") or "?").replace("T", " ")[:16]
    n_var, n_done = run.get("n_variants", 0), run.get("n_done", 0)
    status = run.get("status", "?")
    progress = f"{n_done}/{n_var} variants" if status != RunStatus.DONE else f"{n_var} variants"
    imported = run.get("imported") or {}
    origin = (f" \u00b7 imported copy of {imported['copy_of']}" if imported.get("copy_of")
              else " \u00b7 imported" if imported else "")
    return (
        f"{created} \u00b7 {run.get('model', '?')} \u00b7 {run.get('dataset', '?')} \u00b7 {progress} \u00b7 {status}"
        + origin
    )
