"""ONNX speed recipe: transformer-optimizer fusion with the real head counts (uniform, pruned, and different per layer)
checked against the unfused graph, and the speed-oriented ORT session options."""

from __future__ import annotations

import numpy as np
import onnx

from compression import apply, parse_spec
from compression.predictors import load_predictor
from tests.helpers.tiny_architectures import make_artifact, tiny_model

TEXTS = ["good", "the movie was good", "the movie was good and the acting was very good too", "a dull film"]


def _prune(model, keep: list[int]) -> None:
    """Keep the first ``keep[i]`` heads of layer i, the way head pruning does (compression.hf_io handles)."""
    from compression.hf_io import attention_layers

    for handle, k in zip(attention_layers(model), keep, strict=True):
        handle.keep_heads(list(range(k)))


def _ops(art) -> dict[str, int]:
    graph = onnx.load(str(art.path / "model.onnx"), load_external_data=False).graph
    out: dict[str, int] = {}
    for node in graph.node:
        out[node.op_type] = out.get(node.op_type, 0) + 1
    return out


def test_fused_graph_matches_unfused_with_per_layer_head_counts(tmp_path):
    """Unpruned and uniformly pruned fusion are tested in test_serialization.py. With [1, 3] heads ORT alone would
    give both layers one count (it cannot read it from transformers' (batch, seq, -1, head size) reshape)."""
    keep = [1, 3]
    model = tiny_model("bert", layers=2, heads=4, hidden=32)
    _prune(model, keep)
    base = make_artifact(tmp_path / "base", model)
    assert base.meta["heads_per_layer"] == keep
    plain = apply(base, parse_spec("onnx"), tmp_path / "cache")
    fused = apply(base, parse_spec("onnx:optimize=true"), tmp_path / "cache")
    assert fused.meta["ort_optimized"] is True
    ops = _ops(fused)
    assert ops.get("Attention", 0) == 2, (ops, fused.meta.get("notes"))  # every layer fused, even 1 vs 3 heads
    assert ops.get("SkipLayerNormalization", 0) >= 2
    assert "Softmax" not in ops  # no unfused attention left
    assert fused.meta["ort_fused_ops"]["Attention"] == 2
    graph = onnx.load(str(fused.path / "model.onnx"), load_external_data=False).graph
    heads = [next(a.i for a in n.attribute if a.name == "num_heads") for n in graph.node if n.op_type == "Attention"]
    assert heads == keep  # each layer fused with its own head count
    a, b = load_predictor(plain, 1), load_predictor(fused, 1)
    for texts in (TEXTS, TEXTS[:1]):
        np.testing.assert_allclose(b.predict_logits(texts), a.predict_logits(texts), atol=1e-4, rtol=0)


def test_a_broken_fusion_falls_back_to_the_unfused_graph(tmp_path, monkeypatch):
    """Without the per-layer head counts ORT fuses a [1, 3]-head model with 3 heads everywhere: the check against
    PyTorch catches it and the unfused graph is kept, with a note."""
    import contextlib

    from compression import onnx_export

    monkeypatch.setattr(onnx_export, "_heads_from_query_weights", lambda head_size: contextlib.nullcontext())
    model = tiny_model("bert", layers=2, heads=4, hidden=32)
    _prune(model, [1, 3])
    base = make_artifact(tmp_path / "base", model)
    art = apply(base, parse_spec("onnx:optimize=true"), tmp_path / "cache")
    assert art.meta["ort_optimized"] is False and "Attention" not in _ops(art)
    assert any("kept the unfused graph" in n for n in art.meta["notes"])
    assert art.meta["onnx_check_max_abs_diff"] < 1e-4
    assert sorted(p.name for p in art.path.glob("*.onnx*")) == ["model.onnx"]


def test_session_is_configured_for_speed(tmp_path, monkeypatch):
    base = make_artifact(tmp_path / "base", tiny_model("bert", layers=1, heads=2, hidden=16))
    art = apply(base, parse_spec("onnx"), tmp_path / "cache")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    pred = load_predictor(art, 2)
    import onnxruntime as ort

    opts = pred.session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
