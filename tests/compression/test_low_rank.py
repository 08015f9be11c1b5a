"""low-rank: rank choice, exact ranks on disk, rebuild before a strict load, closeness, chains, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compression import Context, TechniqueError, apply, hf_io, parse_spec
from compression import low_rank as lr
from compression.artifact import Artifact
from tests.helpers.tiny_models import (
    ONNX_ATOL,
    TEXTS,
    artifact_logits,
    build_tiny_bert,
    folder_hash,
)
from tests.helpers.toy_data import toy_texts

_logits = artifact_logits


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("low-rank:value=0", r"value \(rank fraction\) must be a number above 0 and below 1 \(inclusive\), got 0.0"),
        ("low-rank:value=1.5", r"got 1.5"),
        ("low-rank:mode=energy,value=-1", r"value must be a number above 0 .*got -1.0"),
        ("low-rank:mode=rank", "mode must be one of fraction, energy, got 'rank'"),
        ("low-rank:recovery_steps=-3", "recovery_steps must be 0 or more, got -3"),
    ],
)
def test_invalid_configs_refused(spec, message):
    with pytest.raises(TechniqueError, match=message):
        parse_spec(spec)


def test_rank_choice_by_fraction_and_energy():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert lr.choose_rank(s, "fraction", 0.5) == 2
    assert lr.choose_rank(s, "fraction", 0.3) == 2  # rounded up
    assert lr.choose_rank(s, "fraction", 0.01) == 1
    assert lr.choose_rank(s, "energy", 16 / 22) == 1
    assert lr.choose_rank(s, "energy", 0.8) == 2
    assert lr.choose_rank(s, "energy", 1.0) == 4


def test_factorize_is_the_truncated_svd():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 20, generator=g)
    a, b = lr.factorize(w, 12)
    assert a.shape == (12, 20) and b.shape == (12, 12)
    assert torch.allclose(b @ a, w, atol=1e-5)
    a3, b3 = lr.factorize(w, 3)
    s = torch.linalg.svdvals(w)
    assert torch.linalg.matrix_norm(w - b3 @ a3) == pytest.approx(float(s[3:].norm()), rel=1e-4)  # Eckart-Young


def test_ranks_as_asked_structure_rebuilt_and_params_counted(tiny_bert, artifact_cache):
    before = folder_hash(tiny_bert.path)
    art = apply(tiny_bert, parse_spec("low-rank:value=0.25"), artifact_cache)
    assert folder_hash(tiny_bert.path) == before
    ranks = art.meta["low_rank_ranks"]
    assert len(ranks) == 12 and set(ranks.values()) == {8}  # ceil(0.25 x 32) for every 32-wide matrix
    assert json.loads((art.path / "config.json").read_text())[hf_io.LOW_RANK_ATTR] == ranks
    model = hf_io.load_model(art.path)  # strict load: fails unless the structure is rebuilt first
    orig = hf_io.load_model(tiny_bert.path)
    for name, r in ranks.items():
        seq, dense = model.get_submodule(name), orig.get_submodule(name)
        assert seq[0].weight.shape == (r, dense.in_features) and seq[1].weight.shape == (dense.out_features, r)
        assert seq[0].bias is None and torch.equal(seq[1].bias, dense.bias)
    saved = sum(dense.weight.numel() - r * (orig.get_submodule(n).in_features + orig.get_submodule(n).out_features)
                for n, r in ranks.items() for dense in [orig.get_submodule(n)])
    assert art.meta["param_count"] == hf_io.count_params(model) == hf_io.count_params(orig) - saved
    assert art.meta["param_count_before_low_rank"] == hf_io.count_params(orig)
    assert _logits(art).shape == (len(TEXTS), 2)


def test_unprofitable_ranks_stay_dense_and_all_unprofitable_is_refused(tiny_bert, artifact_cache):
    with pytest.raises(TechniqueError, match="no layer gets fewer parameters at this rank"):
        apply(tiny_bert, parse_spec("low-rank:value=0.9"), artifact_cache)


def test_exactly_low_rank_weights_give_the_same_outputs(tmp_path, artifact_cache):
    """When every encoder matrix has rank <= r, factorizing at rank r changes nothing (up to float error)."""
    from safetensors.torch import load_file, save_file

    path = build_tiny_bert(tmp_path / "lowrank-bert")
    state = load_file(str(path / "model.safetensors"))
    for k, v in state.items():
        if k.startswith("bert.encoder.layer.") and k.endswith("weight") and v.dim() == 2:
            a, b = lr.factorize(v, 4)
            state[k] = (b @ a).contiguous()
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    src = Artifact.load(path)
    art = apply(src, parse_spec("low-rank:value=0.25"), artifact_cache)  # rank 8 >= 4
    assert np.abs(_logits(art) - _logits(src)).max() < 1e-4
    coarse = apply(src, parse_spec("low-rank:value=0.05"), artifact_cache)  # rank 2 < 4: really changes the model
    assert np.abs(_logits(coarse) - _logits(src)).max() > 1e-3


def test_energy_mode_and_exclude(tiny_bert, artifact_cache):
    name = "bert.encoder.layer.0.attention.self.query"
    art = apply(tiny_bert, parse_spec(f"low-rank:mode=energy,value=0.5,exclude_layers={name}"), artifact_cache)
    assert name not in art.meta["low_rank_ranks"]
    model = hf_io.load_model(art.path)
    assert isinstance(model.get_submodule(name), torch.nn.Linear)
    for n, r in art.meta["low_rank_ranks"].items():
        s = torch.linalg.svdvals(hf_io.load_model(tiny_bert.path).get_submodule(n).weight.double())
        e = torch.cumsum(s**2, 0) / (s**2).sum()
        assert e[r - 1] >= 0.5 and (r == 1 or e[r - 2] < 0.5)


def test_chains_into_onnx_and_refuses_bad_orders(tiny_bert, artifact_cache):
    art = apply(tiny_bert, parse_spec("low-rank:value=0.25"), artifact_cache)
    onnx = apply(art, parse_spec("onnx"), artifact_cache)
    assert np.abs(_logits(onnx) - _logits(art)).max() < ONNX_ATOL
    with pytest.raises(TechniqueError, match="already factorized"):
        apply(art, parse_spec("low-rank:value=0.25"), artifact_cache)
    with pytest.raises(TechniqueError, match="cannot follow low-rank factorization"):
        apply(art, parse_spec("prune-heads:0.5"), artifact_cache)
    sparse = apply(art, parse_spec("prune-magnitude:0.5"), artifact_cache)  # both factors are Linears: prunable
    assert hf_io.load_model(sparse.path).get_submodule("bert.encoder.layer.0.output.dense")[0].weight.eq(0).any()


def test_recovery_fine_tuning_needs_and_uses_train_data(tiny_bert, artifact_cache):
    with pytest.raises(TechniqueError, match="needs labeled training texts"):
        apply(tiny_bert, parse_spec("low-rank:value=0.25,recovery_steps=2"), artifact_cache, Context())
    texts, labels = toy_texts(24)
    art = apply(tiny_bert, parse_spec("low-rank:value=0.25,recovery_steps=3,batch_size=4"), artifact_cache,
                Context(train_texts=texts, train_labels=labels))
    plain = apply(tiny_bert, parse_spec("low-rank:value=0.25"), artifact_cache)
    assert art.meta["recovery_steps"] == 3 and "3 recovery steps" in art.meta["notes"][-1]
    assert not np.allclose(_logits(art), _logits(plain))  # the weights were trained
