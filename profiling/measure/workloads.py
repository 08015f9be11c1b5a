"""Latency workloads: real texts with dynamic padding, length-bucketed batches, or fixed (batch x seq) shapes.

A workload turns the dataset's own texts into encoded batches once (tokenization is timed apart), then times passes
over all of them with ``predictor.run``. Every workload records its padding waste: the fraction of the positions the
model computes that are padding. numpy and the tokenizer only (no torch): the ONNX child must stay torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KINDS = ("dynamic", "bucketed", "fixed")
# A run's workloads time at most this many passes (a pass = every latency text once, e.g. 8 batches of 8): the run's
# `repeats` counts single calls, and the same number of whole passes would multiply a variant's time.
MAX_RUN_PASSES = 10
KIND_HELP = {
    "dynamic": "the texts in their sampled order, each batch padded to its longest text",
    "bucketed": "texts sorted by token length within a window of batches, then padded to each batch's longest",
    "fixed": "every batch truncated/padded to exactly seq_len tokens (the classic benchmark shape)",
}


@dataclass(frozen=True)
class WorkloadSpec:
    """One way of batching the latency texts (stored with the run and with each result)."""

    kind: str = "dynamic"
    batch_size: int = 8
    seq_len: int | None = None  # fixed only
    window: int = 8  # bucketed only: sort within this many batches (bounded delay, as a server would)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"workload kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"workload batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if self.kind == "fixed":
            if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 2:
                raise ValueError(f"a fixed workload needs seq_len, a whole number >= 2, got {self.seq_len!r}")
        elif self.seq_len is not None:
            raise ValueError(f"seq_len is only for fixed workloads, got seq_len={self.seq_len!r} for {self.kind!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"workload window must be a whole number >= 1, got {self.window!r}")

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.batch_size}x{self.seq_len}"
        if self.kind == "bucketed":
            return f"bucketed b{self.batch_size} w{self.window}"
        return f"dynamic b{self.batch_size}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | WorkloadSpec) -> WorkloadSpec:
        if isinstance(data, WorkloadSpec):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"a workload must be a dict like {{'kind': 'dynamic', 'batch_size': 8}}, got {data!r}")  # noqa: TRY004
        unknown = set(data) - {"kind", "batch_size", "seq_len", "window"}
        if unknown:
            raise ValueError(f"unknown workload option {', '.join(sorted(unknown))}")
        return cls(**data)


def parse_workload(text: str) -> WorkloadSpec:
    """CLI form: ``dynamic:8``, ``bucketed:8`` (``bucketed:8:4`` for a window of 4 batches), ``fixed:10x32``."""
    kind, _, rest = text.strip().partition(":")
    try:
        if kind == "fixed":
            b, _, s = rest.partition("x")
            return WorkloadSpec("fixed", int(b), int(s))
        if kind in ("dynamic", "bucketed"):
            parts = [p for p in rest.split(":") if p]
            extra = {"window": int(parts[1])} if kind == "bucketed" and len(parts) > 1 else {}
            return WorkloadSpec(kind, int(parts[0]) if parts else 8, **extra)
    except ValueError as exc:
        if "workload" in str(exc):
            raise
        raise ValueError(f"cannot read workload {text!r}: use dynamic:8, bucketed:8[:window] or fixed:10x32") from None
    raise ValueError(f"unknown workload kind in {text!r}; use one of {', '.join(KINDS)} (e.g. fixed:10x32)")


def plan_batches(lengths: Sequence[int], spec: WorkloadSpec) -> list[list[int]]:
    """Text indices per batch. Dynamic and fixed keep the given order; bucketed sorts by length inside each window
    of ``window * batch_size`` texts (stable, so equal lengths keep their order). Every text is used once."""
    n, b = len(lengths), spec.batch_size
    order = list(range(n))
    if spec.kind == "bucketed":
        span = b * spec.window
        order = []
        for start in range(0, n, span):
            chunk = list(range(start, min(start + span, n)))
            order.extend(sorted(chunk, key=lambda i: lengths[i]))
    return [order[i : i + b] for i in range(0, n, b)]


def padding_stats(real_lengths: Sequence[Sequence[int]], padded_to: Sequence[int]) -> dict[str, float | int]:
    """Waste of a list of batches: ``real_lengths[k]`` are the tokens of batch k's texts, ``padded_to[k]`` its width.

    ``padding_waste`` = padded positions / all positions computed.
    """
    real = sum(int(sum(r)) for r in real_lengths)
    total = sum(len(r) * int(w) for r, w in zip(real_lengths, padded_to, strict=True))
    return {
        "padding_waste": (total - real) / total if total else 0.0,
        "real_tokens": real,
        "padded_positions": total,
    }


@dataclass
class PreparedWorkload:
    """Encoded batches ready to run, with their padding statistics."""

    spec: WorkloadSpec
    batches: list[dict[str, np.ndarray]]
    stats: dict[str, Any]


def prepare(encoder: Any, texts: Sequence[str], spec: WorkloadSpec) -> PreparedWorkload:
    """Encode ``texts`` into the workload's batches with ``encoder`` (a ``compression.tokenize.TextEncoder``)."""
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("a workload needs at least one text")
    if spec.kind == "fixed" and spec.seq_len > encoder.max_length:
        raise ValueError(f"seq_len {spec.seq_len} exceeds the model's max_length {encoder.max_length}")
    t0 = time.perf_counter()
    full = encoder.lengths(texts)  # untruncated beyond max_length
    plan = plan_batches(full, spec)
    batches, real, widths = [], [], []
    for idx in plan:
        batch_texts = [texts[i] for i in idx]
        enc = encoder.encode(batch_texts, length=spec.seq_len) if spec.kind == "fixed" else encoder.encode(batch_texts)
        batches.append(enc)
        real.append([int(v) for v in enc["attention_mask"].sum(axis=1)])
        widths.append(int(enc["input_ids"].shape[1]))
    tokenize_ms = (time.perf_counter() - t0) * 1000.0
    stats: dict[str, Any] = padding_stats(real, widths)
    kept = sum(min(n, spec.seq_len) for n in full) if spec.kind == "fixed" else sum(full)
    stats.update(
        n_texts=len(texts),
        n_batches=len(batches),
        mean_text_tokens=float(np.mean(full)),
        max_text_tokens=int(max(full)),
        truncated_frac=1.0 - kept / sum(full),
        mean_batch_width=float(np.mean(widths)),
        tokenize_ms_per_pass=tokenize_ms,
    )
    return PreparedWorkload(spec, batches, stats)


def time_passes(
    run: Callable[[dict[str, np.ndarray]], Any],
    prepared: PreparedWorkload,
    repeats: int,
    warmup: int = 1,
    on_each: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Time ``repeats`` passes over all batches (after ``warmup`` untimed passes); raw pass times are kept.

    A pass is the unit: with dynamic or bucketed padding the batches differ in width, so single-batch figures would
    mix shapes; a pass over the same texts is comparable across workloads and variants.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for batch in prepared.batches:
            run(batch)
    raw = []
    for i in range(repeats):
        start = time.perf_counter()
        for batch in prepared.batches:
            run(batch)
        ms = (time.perf_counter() - start) * 1000.0
        raw.append(ms)
        if on_each is not None:
            on_each(i, ms)
    median = float(np.median(raw))
    n_texts, n_batches = prepared.stats["n_texts"], prepared.stats["n_batches"]
    return {
        "workload": prepared.spec.to_json(),
        "label": prepared.spec.label,
        "pass_ms": raw,
        "pass_median_ms": median,
        "ms_per_batch": median / n_batches,
        "texts_per_s": n_texts * 1000.0 / median,
        "real_tokens_per_s": prepared.stats["real_tokens"] * 1000.0 / median,
        **prepared.stats,
    }


def measure_workloads(
    predictor: Any,
    texts: Sequence[str],
    specs: Sequence[WorkloadSpec | dict],
    repeats: int,
    warmup: int = 1,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each workload's figures for a loaded predictor (``compression.predictors.Predictor``: ``encoder`` + ``run``)."""
    if not hasattr(predictor, "encoder") or not hasattr(predictor, "run"):
        raise ValueError("workloads need a predictor with an encoder and run(features) (compression.predictors)")
    out = []
    specs = [WorkloadSpec.from_json(s) for s in specs]
    for k, spec in enumerate(specs):
        prepared = prepare(predictor.encoder, texts, spec)

        def report(i: int, _ms: float, k: int = k, label: str = spec.label) -> None:
            if progress is not None:
                progress((k + (i + 1) / repeats) / len(specs), f"workload {label}: {i + 1}/{repeats}")

        out.append(time_passes(predictor.run, prepared, repeats, warmup, on_each=report))
    return out


def normalize_workloads(value: Any) -> list[dict[str, Any]]:
    """A run request's ``workloads``: a list of spec dicts or CLI strings (``fixed:10x32``) -> validated spec dicts."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"workloads must be a list like ['dynamic:8', 'fixed:8x64'], got {value!r}")  # noqa: TRY004
    specs = [parse_workload(v) if isinstance(v, str) else WorkloadSpec.from_json(v) for v in value]
    return [s.to_json() for s in dict.fromkeys(specs)]
