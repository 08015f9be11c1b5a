"""Results page: a live A/B box: one sentence through the original and a chosen variant, side by side."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from profiling.schema import VariantStatus

log = logging.getLogger(__name__)

TIMED_CALLS = 5  # after one untimed warm-up call
MAX_CHARS = 2000


@st.cache_resource(show_spinner=False, max_entries=4)
def _predictor(artifact_path: str, threads: int) -> Any:
    """A loaded predictor per (artifact folder, threads), kept across reruns and sessions."""
    from compression.predictors import load_predictor

    return load_predictor(Path(artifact_path), threads)


def missing_reason(variant: dict, run: dict) -> str | None:
    """Why the variant's model files cannot be loaded here, or None when they are on this machine."""
    path = variant.get("artifact")
    if not path:
        if (run.get("env") or {}).get("imported"):
            return (f"{variant['name']}: this run was imported from a bundle; bundles carry the measurements, not "
                    "the model files, so it cannot run here")
        return f"{variant['name']}: no model files were recorded for this variant"
    if not Path(path).is_dir():
        return (f"{variant['name']}: its model files are gone from this machine ({path}); rerun the run to rebuild "
                "them")
    return None


def predict(artifact_path: str, threads: int, text: str) -> dict[str, Any]:
    """Probabilities of one text and the median latency of TIMED_CALLS calls after a warm-up call."""
    from profiling.measure.evaluation import softmax

    pred = _predictor(artifact_path, threads)
    pred.predict_logits([text])  # warm-up (first-call costs are not the steady latency)
    times = []
    logits = None
    for _ in range(TIMED_CALLS):
        t0 = time.perf_counter()
        logits = pred.predict_logits([text])
        times.append((time.perf_counter() - t0) * 1000.0)
    probs = np.asarray(softmax(np.asarray(logits, dtype=np.float32)))[0]
    return {"probs": probs.tolist(), "label": int(probs.argmax()), "latency_ms": float(np.median(times))}


def _side(col: Any, title: str, result: dict | None, problem: str | None, names: list[str]) -> None:
    with col:
        st.markdown(f"**{title}**")
        if problem:
            st.warning(problem, icon=":material/folder_off:")
            return
        if result is None:
            return
        label = names[result["label"]] if result["label"] < len(names) else str(result["label"])
        st.metric("Predicted", label, help="the class with the highest probability")
        st.metric("Latency (median of 5, batch 1)", f"{result['latency_ms']:.1f} ms")
        frame = pd.DataFrame({
            "Class": [names[i] if i < len(names) else str(i) for i in range(len(result["probs"]))],
            "Probability": result["probs"],
        })
        st.dataframe(frame, hide_index=True, column_config={
            "Probability": st.column_config.ProgressColumn("Probability", min_value=0.0, max_value=1.0, format="%.3f"),
        })


def render(store: Any, run: dict, variants: list[dict]) -> None:
    run_id = run["id"]
    st.subheader("Live A/B: try your own sentence")
    done = [v for v in variants if v.get("status") == VariantStatus.DONE]
    original = next((v for v in done if v["idx"] == 0), None)
    others = [v for v in done if v["idx"] != 0]
    if original is None or not others:
        st.info("The live comparison appears when the original and at least one variant have finished.")
        return
    names = [str(x) for x in store.examples(run_id).get("label_names") or []]
    settings = (run.get("request") or {}).get("settings") or {}
    threads = max(1, min(2, int(settings.get("threads") or 1)))
    by_idx = {v["idx"]: v for v in others}
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    text = c1.text_area("Sentence", key=f"ab_text_{run_id}", max_chars=MAX_CHARS, height=80,
                        placeholder="Type or paste a sentence, e.g. a review", help="Runs on this server's CPU with "
                        f"{threads} thread(s); the first use of a model loads it (a few seconds).")
    idx = c2.selectbox("Variant", list(by_idx), format_func=lambda i: by_idx[i]["name"], key=f"ab_variant_{run_id}")
    go = st.button("Compare", icon=":material/compare_arrows:", key=f"ab_go_{run_id}")
    if go and not (text or "").strip():
        st.info("Type or paste a sentence first.")
    chosen = by_idx[idx]
    problems = {v["idx"]: missing_reason(v, run) for v in (original, chosen)}
    left, right = st.columns(2)
    results: dict[int, dict | None] = {original["idx"]: None, chosen["idx"]: None}
    if go and (text or "").strip():
        for v in (original, chosen):
            if problems[v["idx"]]:
                continue
            try:
                with st.spinner(f"Running {v['name']}\u2026"):
                    results[v["idx"]] = predict(str(v["artifact"]), threads, text.strip())
            except Exception as exc:  # a model that cannot load must not break the page
                log.exception("live A/B: %s failed", v["name"])
                problems[v["idx"]] = f"{v['name']} could not run: {exc}"
    _side(left, f"Original \u00b7 {original['name']}", results[original["idx"]], problems[original["idx"]], names)
    _side(right, f"Variant \u00b7 {chosen['name']}", results[chosen["idx"]], problems[chosen["idx"]], names)
    a, b = results[original["idx"]], results[chosen["idx"]]
    if a and b:
        same = a["label"] == b["label"]
        head = "Same prediction" if same else "Different predictions"
        if b["latency_ms"] > 0 and a["latency_ms"] >= b["latency_ms"]:
            speed = f"the variant was {a['latency_ms'] / b['latency_ms']:.2f}\u00d7 faster on this sentence"
        else:
            speed = f"the variant took {b['latency_ms'] / max(a['latency_ms'], 1e-9):.2f}\u00d7 the original's time"
        (st.success if same else st.warning)(f"{head}; {speed} (one sentence, a rough check: the table has the "
                                             "measured figures).")
