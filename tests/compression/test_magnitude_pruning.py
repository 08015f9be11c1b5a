"""prune-magnitude and the sparse format: validation, exact sparsity, compact bit-exact storage, chains into ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compression import Context, TechniqueError, apply, hf_io, parse_spec, sparse_io
from compression import magnitude_pruning as mp
from tests.helpers.engine import run_on_default
from tests.helpers.tiny_models import (
    ONNX_ATOL,
    TEXTS,
    artifact_logits,
    centered_corr,
    folder_hash,
)

ENCODER = "bert.encoder.layer."


_logits = artifact_logits


# --- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1.5, 0, 0.0, 1, 1.0, -0.2, float("nan"), True, "half"])
def test_bad_sparsity_refused_with_the_value(bad):
    with pytest.raises(ValueError, match=r"sparsity must be a number above 0 and below 1, got " + repr(bad)):
        mp.MagnitudePruneConfig(sparsity=bad)


def test_bad_options_refused_clearly():
    with pytest.raises(TechniqueError, match="scope must be one of per-layer, global, got 'layer'"):
        parse_spec("prune-magnitude:sparsity=0.5,scope=layer")
    with pytest.raises(TechniqueError, match="sparsity must be a number, got 'lots'"):
        parse_spec("prune-magnitude:lots")
    with pytest.raises(ValueError, match="'3bad' is not a module name"):
        mp.MagnitudePruneConfig(exclude_layers="bert.pooler.dense,3bad")


def test_exclude_list_accepts_commas_semicolons_and_spaces():
    assert mp.parse_layers("a.b, c.d;e.f  a.b+g.h") == ("a.b", "c.d", "e.f", "g.h")
    cfg = parse_spec("prune-magnitude:sparsity=0.5,exclude_layers=a.b;c.d")
    assert cfg.exclude_layers == "a.b+c.d"  # one canonical form for every technique, so the spec parses back
    assert parse_spec(cfg.spec()) == cfg


def test_masks_remove_exactly_the_requested_count_including_ties():
    w = [torch.tensor([[0.0, 0.0, 0.0, 1.0], [2.0, -3.0, 0.5, 0.0]]), torch.arange(10.0).view(2, 5) - 5]
    for scope in mp.SCOPES:
        masks = mp.magnitude_masks(w, 0.3, scope)
        if scope == "per-layer":
            assert [int((~m).sum()) for m in masks] == [round(0.3 * 8), round(0.3 * 10)]
        else:
            assert sum(int((~m).sum()) for m in masks) == round(0.3 * 18)
        for m, t in zip(masks, w, strict=True):  # every pruned weight is no larger than every kept one
            if (~m).any() and m.any():
                assert t.abs()[~m].max() <= t.abs()[m].min()


# --- the sparse format ------------------------------------------------------------------------------------


def test_sparse_roundtrip_is_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(37, 53, generator=g)
    w[torch.rand(37, 53, generator=g) < 0.8] = 0.0
    w[0, 0] = -0.0  # a signed zero is a value: kept bit for bit
    state = {"sparse": w, "dense": torch.randn(8, 8, generator=g), "bias": torch.zeros(5), "ids": torch.arange(4)}
    info = sparse_io.save_sparse(state, tmp_path / "w.safetensors")
    assert info == {"packed_tensors": 1}  # only the mostly-zero matrix is worth packing
    back = sparse_io.load_sparse(tmp_path / "w.safetensors")
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k].view(torch.uint8) if v.is_floating_point() else back[k],
                           v.view(torch.uint8) if v.is_floating_point() else v)
    raw = load_file(str(tmp_path / "w.safetensors"))
    assert "sparse" not in raw and raw["sparse.__sparse_values"].numel() == int((w.view(torch.int32) != 0).sum())


# --- the technique on tiny models -------------------------------------------------------------------------


@pytest.mark.parametrize("scope", mp.SCOPES)
def test_sparsity_exact_shapes_kept_and_only_encoder_linears_pruned(tiny_bert, artifact_cache, scope):
    before = folder_hash(tiny_bert.path)
    art = apply(tiny_bert, parse_spec(f"prune-magnitude:sparsity=0.6,scope={scope}"), artifact_cache)
    assert folder_hash(tiny_bert.path) == before  # the input artifact is never modified
    assert (art.path / sparse_io.SPARSE_WEIGHTS_FILE).is_file() and not (art.path / hf_io.WEIGHTS_FILE).exists()
    orig, pruned = hf_io.load_model(tiny_bert.path), hf_io.load_model(art.path)
    so, sp = orig.state_dict(), pruned.state_dict()
    assert {k: v.shape for k, v in so.items()} == {k: v.shape for k, v in sp.items()}
    targets = [k for k in so if k.startswith(ENCODER) and k.endswith(".weight") and so[k].dim() == 2]
    assert len(targets) == 12  # 2 layers x (q, k, v, attention out, ffn in, ffn out)
    zeros = {k: int((sp[k] == 0).sum()) for k in targets}
    if scope == "per-layer":
        assert all(zeros[k] == round(0.6 * so[k].numel()) for k in targets)
    else:
        assert sum(zeros.values()) == round(0.6 * sum(so[k].numel() for k in targets))
        assert len(set(zeros.values())) > 1  # one global threshold: matrices end up unequally sparse
    assert art.meta["weight_sparsity"] == pytest.approx(0.6, abs=1e-3)  # per-matrix rounding
    for k in so:  # everything else (embeddings, biases, LayerNorms, pooler, classifier) is untouched
        if k not in targets:
            assert torch.equal(so[k], sp[k]), k
    for k in targets:  # kept weights keep their exact values
        keep = sp[k] != 0
        assert torch.equal(sp[k][keep], so[k][keep])


def test_loads_back_bit_exact_and_is_smaller_on_disk(tiny_bert, artifact_cache):
    art = apply(tiny_bert, parse_spec("prune-magnitude:0.9"), artifact_cache)
    model = hf_io.load_model(tiny_bert.path)
    linears = mp.target_linears(model)
    masks = mp.magnitude_masks([m.weight for _, m in linears], 0.9, "per-layer")
    with torch.no_grad():
        for (_, m), keep in zip(linears, masks, strict=True):
            m.weight.masked_fill_(~keep, 0.0)
    expected, got = model.state_dict(), hf_io.load_model(art.path).state_dict()
    for k, v in expected.items():
        assert torch.equal(v.view(torch.uint8), got[k].view(torch.uint8)), k
    # at 90 % the pruned matrices cost 10 % (values) + 1/32 (mask) of their dense bytes, plus a small header
    dense = sum(v.numel() * v.element_size() for v in expected.values())
    encoder = sum(m.weight.numel() * 4 for _, m in linears)
    stored = (art.path / sparse_io.SPARSE_WEIGHTS_FILE).stat().st_size
    assert dense - encoder + (0.1 + 1 / 32) * encoder <= stored < dense - encoder + (0.1 + 1 / 32) * encoder + 8000
    assert art.disk_bytes() < tiny_bert.disk_bytes()


def test_low_sparsity_keeps_outputs_close(tiny_bert, artifact_cache):
    ref = _logits(tiny_bert)
    low = _logits(apply(tiny_bert, parse_spec("prune-magnitude:0.1"), artifact_cache))
    high = _logits(apply(tiny_bert, parse_spec("prune-magnitude:0.9"), artifact_cache))
    err_low, err_high = np.abs(low - ref).max(), np.abs(high - ref).max()
    assert err_low < 0.1 * np.abs(ref).max()
    assert centered_corr(low, ref) > 0.99
    assert err_high > 3 * err_low  # pruning more changes more: the comparison is not vacuous


def test_exclude_layers_stay_dense_and_unknown_names_are_refused(tiny_bert, artifact_cache):
    name = "bert.encoder.layer.1.attention.self.query"
    art = apply(tiny_bert, parse_spec(f"prune-magnitude:sparsity=0.5,exclude_layers={name}"), artifact_cache)
    orig, pruned = hf_io.load_model(tiny_bert.path), hf_io.load_model(art.path)
    assert torch.equal(orig.get_submodule(name).weight, pruned.get_submodule(name).weight)
    assert float((pruned.bert.encoder.layer[1].attention.self.key.weight == 0).float().mean()) == 0.5
    with pytest.raises(TechniqueError, match="'bert.encoder.layer.7.output.dense' is not a Linear layer"):
        apply(tiny_bert, parse_spec("prune-magnitude:sparsity=0.5,exclude_layers=bert.encoder.layer.7.output.dense"),
              artifact_cache)


def test_include_classifier_prunes_the_head_too(tiny_bert, artifact_cache):
    art = apply(tiny_bert, parse_spec("prune-magnitude:sparsity=0.5,include_classifier=true"), artifact_cache)
    model = hf_io.load_model(art.path)
    assert float((model.classifier.weight == 0).float().mean()) == 0.5
    assert float((model.bert.pooler.dense.weight == 0).float().mean()) == 0.5


def test_chains_into_onnx_and_onnx_int8(tiny_bert, artifact_cache):
    pruned = apply(tiny_bert, parse_spec("prune-magnitude:0.5"), artifact_cache)
    ref = _logits(pruned)
    onnx = apply(pruned, parse_spec("onnx"), artifact_cache)
    assert np.abs(_logits(onnx) - ref).max() < ONNX_ATOL
    int8 = apply(onnx, parse_spec("onnx-int8"), artifact_cache)
    assert int8.lineage == ("prune-magnitude", "onnx", "onnx-int8")
    got = _logits(int8)
    assert np.isfinite(got).all() and centered_corr(got, ref) > 0.9


def test_other_architectures(tiny_roberta, artifact_cache):
    art = apply(tiny_roberta, parse_spec("prune-magnitude:0.5"), artifact_cache, Context())
    model = hf_io.load_model(art.path)
    w = model.roberta.encoder.layer[0].intermediate.dense.weight
    assert int((w == 0).sum()) == round(0.5 * w.numel())
    assert math.isclose(art.meta["weight_sparsity"], 0.5, abs_tol=1e-3)
    assert _logits(art, TEXTS[:2]).shape == (2, 3)


@pytest.mark.slow
def test_default_classifier_through_the_runner(tmp_path, monkeypatch):
    """Magnitude pruning at 50 % on the real default classifier, built and profiled by the engine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store, run_id, v = run_on_default(tmp_path / "runs.sqlite", [
        {"name": "Original", "chain": []},
        {"name": "Magnitude 50 %", "chain": [{"technique": "prune-magnitude", "sparsity": 0.5}]},
    ])
    orig, pruned = v["Original"]["metrics"], v["Magnitude 50 %"]["metrics"]
    assert orig["accuracy"] >= 0.7
    assert pruned["disk_mib"] < 0.9 * orig["disk_mib"]  # the encoder's matrices shrink to ~53 %
    assert pruned["agreement"] >= 0.8 and pruned["accuracy"] >= orig["accuracy"] - 0.1
    assert pruned["latency_b1_median_ms"] > 0 and len(store.predictions(run_id, v["Magnitude 50 %"]["idx"])["preds"]) == 100


def test_a_file_that_does_not_match_the_model_is_refused(tiny_bert, artifact_cache, tmp_path):
    art = apply(tiny_bert, parse_spec("prune-magnitude:0.5"), artifact_cache)
    state = sparse_io.load_sparse(art.path / sparse_io.SPARSE_WEIGHTS_FILE)
    state.pop("classifier.bias")
    sparse_io.save_sparse(state, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"does not match the model: missing \['classifier.bias'\]"):
        sparse_io.load_sparse_into(hf_io.load_model(tiny_bert.path), tmp_path / "w.safetensors")
